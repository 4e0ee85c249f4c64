"""The unit of work the handler unit tests share: one 'transaction' on an in-memory database.

A unit works on a copy of the committed state; `commit` makes its copy the committed state, and leaving
without one drops the copy (a rollback), as `slm_shared.unit_of_work.SqlUnitOfWork` does with a real session.
Each service's fakes subclass it and build their fake repositories on the copy in `_open`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Generic, Self, TypeVar

if TYPE_CHECKING:
    from types import TracebackType

State = TypeVar("State")


class InMemoryDatabase(Generic[State]):
    """The committed state, and every unit opened on it, in order."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.units: list[InMemoryUnitOfWork[State]] = []

    @property
    def committed(self) -> list[bool]:
        return [unit.committed for unit in self.units]


class InMemoryUnitOfWork(Generic[State]):
    """Works on a copy of the database's state; `committed` says whether its work was kept."""

    def __init__(self, database: InMemoryDatabase[State]) -> None:
        self._database = database
        self.committed = False
        database.units.append(self)

    async def __aenter__(self) -> Self:
        self._work = copy.deepcopy(self._database.state)
        self._open(self._work)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None  # the copy is dropped: what was not committed is lost

    async def commit(self) -> None:
        # A copy again: work the unit does after its commit is not committed with it.
        self._database.state = copy.deepcopy(self._work)
        self.committed = True

    def _open(self, work: State) -> None:
        """Build the fake repositories on `work`."""
