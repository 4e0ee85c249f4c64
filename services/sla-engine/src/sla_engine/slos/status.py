"""An SLO's status at an instant, from the stored rollups through the port, with its service hours and planned
maintenance (docs/slo.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sla_engine.domain.slo.definition import AvailabilitySli, SloDefinition, ThresholdSli, TicketSlaSli
from sla_engine.domain.slo.evaluation import LOOKBACKS, SloStatus, evaluate
from sla_engine.domain.slo.maintenance import recurring_windows
from sla_engine.domain.slo.series import MinuteSeries, ratio_counts
from sla_engine.domain.slo.windows import window_bounds

if TYPE_CHECKING:
    from sla_engine.domain.bundle import Bundle
    from sla_engine.ports import SloSeries, SloSignals
    from slm_shared.business_time import BusinessCalendar

_LONGEST_LOOKBACK = timedelta(seconds=max(LOOKBACKS.values()))


async def current_status(
    signals: SloSignals,
    series_store: SloSeries,
    tenant_id: str,
    slo: SloDefinition,
    bundle: Bundle | None,
    now: datetime,
) -> SloStatus:
    """The SLO's status at `now` from the stored rollups, with its service hours and planned maintenance.

    Recurring maintenance (`sli.maintenance`) is expanded here, over the window and the lookbacks only, and
    excluded together with the stored `itsm.maintenance.v1` windows: a bundle change takes effect on every
    minute at once, with nothing to rewrite."""
    hours = bundle.calendar(slo.calendar) if bundle is not None and slo.calendar is not None else None
    start, end = window_bounds(slo.window, now)
    split = now - _LONGEST_LOOKBACK
    since = min(start, split)
    # The window's minutes older than every lookback are summed by the database when nothing among them is
    # excluded minute by minute (service hours, maintenance) and no slice is judged.
    summed_ahead = start < split and not slo.sliced and (hours is None or hours.is_continuous)
    scheduled: list[tuple[datetime, datetime]] = []
    if isinstance(slo.sli, AvailabilitySli):
        scheduled = [
            (window.start, window.end)
            for window in await signals.maintenance_between(tenant_id, slo.service, since, end)
        ]
        summed_ahead = (
            summed_ahead
            and not slo.sli.maintenance
            and not any(begin < split and finish > start for begin, finish in scheduled)
        )
        series = await series_store.availability_series(
            tenant_id, slo.service, since, now, slo.sli.degraded_weight, split if summed_ahead else None
        )
    elif isinstance(slo.sli, TicketSlaSli):
        series = ratio_counts(
            await series_store.ticket_sla_minutes(
                tenant_id, slo.service, slo.sli.policy, slo.sli.metric, slo.sli.priorities, since, now
            )
        )
    else:
        name = slo.sli.rollup_key if isinstance(slo.sli, ThresholdSli) else slo.sli.sli
        series = await series_store.ratio_series(
            tenant_id, slo.service, name, since, now, split if summed_ahead else None
        )
    # The sums, calendar checks and RRULE expansion are CPU work: a worker thread keeps the event loop (Kafka
    # heartbeats, HTTP) running while it lasts.
    return await asyncio.to_thread(_status, slo, series, now, hours, scheduled, since, end)


def _status(
    slo: SloDefinition,
    series: MinuteSeries,
    now: datetime,
    hours: BusinessCalendar | None,
    scheduled: list[tuple[datetime, datetime]],
    since: datetime,
    end: datetime,
) -> SloStatus:
    maintenance = list(scheduled)
    if isinstance(slo.sli, AvailabilitySli):
        maintenance += recurring_windows(slo.sli.maintenance, since, end)
    return evaluate(slo, series, now, hours, maintenance)
