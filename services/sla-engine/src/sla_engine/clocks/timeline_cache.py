"""Decoded timeline rows kept between transactions, so a batch does not re-parse every stored snapshot.

Invalidation rule: a `ticket_events` row is never updated (it is inserted once, redeliveries are dropped on
insert) and its `arrival` identity is never handed out twice, so a decoded row stays right for as long as a row
with that arrival exists. Every load still lists the ticket's arrivals from the database, in the caller's
transaction: rows it does not list are not used, rows not cached yet are fetched and decoded. A cached row of a
transaction that rolled back is never listed, so it is never used either. The cache is bounded by tickets,
least recently loaded first out; one instance serves one database.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sla_engine.domain.timeline import TicketSnapshot

TicketRef = tuple[str, str]  # tenant, ticket


class TimelineCache:
    def __init__(self, max_tickets: int = 5_000) -> None:
        self._tickets: OrderedDict[TicketRef, dict[int, TicketSnapshot]] = OrderedDict()
        self._max_tickets = max_tickets

    def rows(self, ticket: TicketRef) -> dict[int, TicketSnapshot]:
        """The ticket's decoded rows by arrival (empty if none), now the most recently used."""
        rows = self._tickets.get(ticket)
        if rows is None:
            return {}
        self._tickets.move_to_end(ticket)
        return rows

    def keep(self, ticket: TicketRef, arrival: int, snapshot: TicketSnapshot) -> None:
        rows = self._tickets.get(ticket)
        if rows is None:
            rows = self._tickets[ticket] = {}
            while len(self._tickets) > self._max_tickets:
                self._tickets.popitem(last=False)
        rows[arrival] = snapshot

    def __len__(self) -> int:
        return len(self._tickets)
