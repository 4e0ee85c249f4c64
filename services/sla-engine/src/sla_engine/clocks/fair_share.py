"""Which tenant's due ticket the reconcile loop evaluates next: pure, no I/O.

Tickets are not equally expensive: a tenant with a bundle of a thousand policies costs a hundred times more
per ticket than one with ten. Taking tickets in turn would still give the expensive tenant nearly all the
evaluation time, so the loop shares *time*: the next ticket is always of the tenant that has used the least
evaluation time so far among the tenants with tickets waiting (start-time fair queueing); on a tie, the one
served least recently. Usage is kept relative to the least-served tenant of the round.

Two rounds run at once and share one `FairShare` (timers.py), each seeing only the due tickets the other has not
locked: a round may see one tenant, or none. So a round never resets anybody's standing: a tenant absent from
it keeps its usage (its tickets may be in the other round), and only one absent for FORGET_AFTER_ROUNDS rounds
in a row is forgotten, coming back level with the least-served instead of claiming the time it did not use.
(Forgetting every tenant absent from one round let the empty round in flight wipe the share, so every round
began with a tie that the earliest-due tenant won: a backlog of expensive tickets starved a cheap tenant.)
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

Item = TypeVar("Item")


FORGET_AFTER_ROUNDS = 20


class FairShare:
    """Evaluation time used per tenant, carried from one round to the next."""

    def __init__(self) -> None:
        self.used: dict[str, float] = {}
        self._served: dict[str, int] = {}  # when each tenant was last charged (a sequence number)
        self._sequence = itertools.count()
        self._rounds = 0
        self._seen: dict[str, int] = {}  # the last round each tenant had work in

    def start_round(self, tenants: Iterable[str]) -> None:
        """A round with these tenants' work: newcomers start level with the least-served of them, and usage is
        made relative to that least. A round with no work changes nothing."""
        present = set(tenants)
        if not present:
            return
        self._rounds += 1
        gone = [
            tenant for tenant in self.used if self._rounds - self._seen.get(tenant, self._rounds) > FORGET_AFTER_ROUNDS
        ]
        for tenant in gone:
            del self.used[tenant]
            self._seen.pop(tenant, None)
            self._served.pop(tenant, None)
        floor = min((self.used[tenant] for tenant in present if tenant in self.used), default=0.0)
        for tenant in present:
            self.used.setdefault(tenant, floor)
            self._seen[tenant] = self._rounds
        self.used = {tenant: seconds - floor for tenant, seconds in self.used.items()}

    def charge(self, tenant: str, seconds: float) -> None:
        self.used[tenant] = self.used.get(tenant, 0.0) + seconds
        self._served[tenant] = next(self._sequence)

    def priority(self, tenant: str) -> tuple[float, int]:
        """Lower goes first: least time used, then least recently served (never served: first)."""
        return self.used.get(tenant, 0.0), self._served.get(tenant, -1)

    def schedule(self, work: Iterable[tuple[str, Item]]) -> TenantQueues[Item]:
        """The items of one round, each tenant's in the order given, taken fairly by `TenantQueues`."""
        return TenantQueues(self, work)


class TenantQueues(Generic[Item]):
    """One round's work: iterating yields the next item of the tenant with the least time used; the caller
    charges the time each item took (`FairShare.charge`) before asking for the next."""

    def __init__(self, share: FairShare, work: Iterable[tuple[str, Item]]) -> None:
        self._share = share
        self._queues: dict[str, deque[Item]] = {}
        for tenant, item in work:
            self._queues.setdefault(tenant, deque()).append(item)
        share.start_round(self._queues)

    def __iter__(self) -> Iterator[tuple[str, Item]]:
        while self._queues:
            # Full ties go to the tenant listed first (the earliest due).
            tenant = min(self._queues, key=self._share.priority)
            queue = self._queues[tenant]
            item = queue.popleft()
            if not queue:
                del self._queues[tenant]
            yield tenant, item
