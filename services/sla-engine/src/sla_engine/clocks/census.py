"""The `slm_clocks` gauge: how many clocks stand in each state, counted in PostgreSQL every interval (app.py).

Counted from the table rather than kept in memory, so it is right after a restart, a rebalance or a
recalculation. Every replica reports the same totals (use `max`, not `sum`, across pods).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from prometheus_client import Gauge

from sla_engine.domain.results import ClockState

if TYPE_CHECKING:
    from sla_engine.ports import EngineUnits

CLOCKS = Gauge(
    "slm_clocks", "Clocks by state, every tenant; breached=true on a running clock means overdue", ["state", "breached"]
)


class ClockCensus:
    def __init__(self, units: EngineUnits) -> None:
        self._units = units

    async def count(self) -> dict[tuple[str, bool], int]:
        async with self._units() as uow:
            counts = await uow.states.count_clocks()
        for state in get_args(ClockState):  # states with no clock read 0, not "no data"
            for breached in (False, True):
                CLOCKS.labels(state, str(breached).lower()).set(counts.get((state, breached), 0))
        return counts
