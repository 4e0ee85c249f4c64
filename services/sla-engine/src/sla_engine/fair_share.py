"""Which tenant's due ticket the reconcile loop evaluates next: pure, no I/O.

Tickets are not equally expensive: a tenant with a bundle of a thousand policies costs a hundred times more
per ticket than one with ten. Taking tickets in turn would still give the expensive tenant nearly all the
evaluation time, so the loop shares *time*: the next ticket is always of the tenant that has used the least
evaluation time so far among the tenants with tickets waiting (start-time fair queueing); on a tie, the one
served least recently. Usage is kept relative to the least-served tenant, and tenants with nothing due are
forgotten, so a tenant that comes back does not claim the time it did not use meanwhile.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")


class FairShare:
    """Evaluation time used per tenant, carried from one round to the next."""

    def __init__(self) -> None:
        self.used: dict[str, float] = {}
        self._served: dict[str, int] = {}  # when each tenant was last charged (a sequence number)
        self._sequence = itertools.count()

    def start_round(self, tenants: Iterable[str]) -> None:
        """Keep the tenants with work in this round, their usage relative to the least of them."""
        present = set(tenants)
        kept = {tenant: seconds for tenant, seconds in self.used.items() if tenant in present}
        floor = min(kept.values(), default=0.0)
        self.used = {tenant: kept.get(tenant, floor) - floor for tenant in present}
        self._served = {tenant: turn for tenant, turn in self._served.items() if tenant in present}

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
