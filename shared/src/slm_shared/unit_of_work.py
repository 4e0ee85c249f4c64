"""The unit of work: one database transaction and the repositories that work inside it.

A handler opens one per message batch, request or loop round, works through the repositories the unit exposes
and commits; leaving without a commit rolls everything back. Repositories take the unit's session and never
commit (cosmicpython, chapter 6). Each service subclasses `SqlUnitOfWork` to build its repositories in
`_open`, and states what its handlers need as a Protocol, so unit tests hand them fakes instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from slm_shared.events import CloudEvent
    from slm_shared.inbox import Inbox
    from slm_shared.outbox import Outbox, OutgoingEvent, OutgoingRecord


class UnitOfWork(Protocol):
    """The port handlers see: enter, work through the unit's repositories, commit."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...


class OutboxPort(Protocol):
    """Events produced by the transaction, published by the relay only once it commits."""

    async def add(self, events: Sequence[OutgoingEvent | OutgoingRecord]) -> None: ...


class InboxPort(Protocol):
    """The events of a batch not seen before; recorded in the transaction, so a rollback forgets them."""

    async def first_deliveries(self, events: Sequence[CloudEvent]) -> list[CloudEvent]: ...


class SessionOutbox:
    """The kit's outbox bound to one unit's session."""

    def __init__(self, outbox: Outbox, session: AsyncSession) -> None:
        self._outbox = outbox
        self._session = session

    async def add(self, events: Sequence[OutgoingEvent | OutgoingRecord]) -> None:
        await self._outbox.add(self._session, events)


class SessionInbox:
    """The kit's inbox bound to one unit's session."""

    def __init__(self, inbox: Inbox, session: AsyncSession) -> None:
        self._inbox = inbox
        self._session = session

    async def first_deliveries(self, events: Sequence[CloudEvent]) -> list[CloudEvent]:
        return await self._inbox.first_deliveries(self._session, events)


class SqlUnitOfWork:
    """One SQLAlchemy session and its transaction; subclasses add their repositories in `_open`."""

    session: AsyncSession

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self._open(self.session)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            # Work done after the last commit (or with none) is not kept.
            if self.session.in_transaction():
                await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        await self.session.commit()

    def _open(self, session: AsyncSession) -> None:
        """Build the repositories that work in `session`."""


UnitOfWorkFactory = Callable[[], UnitOfWork]
