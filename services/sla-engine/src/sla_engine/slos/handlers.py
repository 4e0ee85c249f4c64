"""Service SLOs: `itsm.signals.v1` in, per-minute rollups stored, `slo.status.v1` and `slo.alert.v1` out.

Business rules (docs/slo.md):
- A batch of signals is one transaction: the inbox drops redelivered ids; availability state changes and
  maintenance windows are stored and the availability minutes from the earliest affected instant to now are
  recomputed (so a late signal rewrites exactly the minutes it changes); good/total measurement windows are
  added to their minute. Then every SLO of the touched services is evaluated.
- Every finite sample (`value`) is kept in `slo_samples` (exact, `Decimal`) and counted for each threshold
  configured when it arrives; a threshold added later is backfilled from the samples when its bundle is
  applied (bundles/lifecycle.py). The batch holds the tenants' shared samples lock from before it reads the thresholds,
  so a sample is counted either on arrival or by the backfill, never both, never neither. Samples older than
  `sample_retention_days` are purged by the periodic loop.
- The periodic loop extends availability minutes to now (an outage keeps burning budget without new
  signals) and evaluates every SLO, which is also what raises `no_data` and what picks up ticket SLA
  attainment (`ticket_sla` SLOs read the stopped clocks in this database).
- Status goes out when it changed, at most once per SLO per `slo_status_interval_seconds`; alerts go out
  once on firing and once on resolving (the firing set is stored under a row lock).
- Planned maintenance is excluded when evaluating: the stored `itsm.maintenance.v1` windows are already in
  the rollups, and recurring windows from the bundle (`sli.maintenance`) are expanded over the evaluated
  range, so a bundle that adds or changes one corrects every stored minute without rewriting any.
- Idempotent: a redelivered batch adds nothing, and re-evaluating unchanged data publishes nothing.
- Isolation: each tenant of the pass is one transaction and each SLO one savepoint; a failure is rolled back
  alone, logged and counted (`slm_background_failures_total{task="slo evaluation"}`) and the rest goes on.
  CPU work (evaluation, availability minutes) runs in a worker thread so the event loop stays live.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import DBAPIError

from sla_engine.bundles.cache import BundleCache
from sla_engine.domain.bundle import Bundle
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.admission import signal_refusal
from sla_engine.domain.slo.alerts import AlertName, AlertTransition, alert_transitions, firing_alerts
from sla_engine.domain.slo.definition import AvailabilitySli, SloDefinition, ThresholdSli, TicketSlaSli
from sla_engine.domain.slo.evaluation import LOOKBACKS, SloStatus, evaluate
from sla_engine.domain.slo.maintenance import recurring_windows
from sla_engine.domain.slo.rollups import RatioMinute, availability_minutes, merge_ratio, minute_of, ratio_minute
from sla_engine.domain.slo.series import MinuteSeries, ratio_counts
from sla_engine.domain.slo.windows import window_bounds
from sla_engine.ports import EngineUnit, EngineUnits, SloSeries
from slm_shared import topics
from slm_shared.background import BACKGROUND_FAILURES
from slm_shared.business_time import BusinessCalendar
from slm_shared.consumer import RecordsRefused, parse_batch
from slm_shared.events import (
    AVAILABILITY_EVENT,
    MAINTENANCE_EVENT,
    MEASUREMENT_EVENT,
    SLO_ALERT_EVENT,
    SLO_STATUS_EVENT,
    AvailabilityData,
    CloudEvent,
    MaintenanceData,
    MeasurementData,
    SloAlertData,
    SloStatusData,
    make_event,
)
from slm_shared.outbox import OutgoingEvent
from slm_shared.time_source import Now, utc_now

log = logging.getLogger(__name__)

SOURCE = "slm://sla-engine"
SIGNAL_TYPES = (AVAILABILITY_EVENT, MEASUREMENT_EVENT, MAINTENANCE_EVENT)
_LONGEST_LOOKBACK = timedelta(seconds=max(LOOKBACKS.values()))
ServiceKey = tuple[str, str]
_TASK = "slo evaluation"


@dataclass(frozen=True)
class SloReading:
    """One SLO as configured (`entry`, as written), its status now and its alerts firing now."""

    entry: Mapping[str, Any]
    slo: SloDefinition
    status: SloStatus
    alerts: Mapping[AlertName, AlertTransition]


class SloKeeper:
    """Keeps rollups current and publishes each SLO's status and alert changes."""

    def __init__(self, units: EngineUnits, bundles: BundleCache, now: Now = utc_now, *,
                 status_interval_seconds: float = 10.0, sample_retention_days: int = 100) -> None:
        self._units = units
        self._bundles = bundles
        self._now = now
        self._interval = timedelta(seconds=status_interval_seconds)
        self._retention = timedelta(days=sample_retention_days)

    async def on_signal_records(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[str]:
        """Store a batch of signals and evaluate the touched services' SLOs, in one transaction. A signal the engine
        cannot take (`signal_refusal`: older than the sample retention, instants out of range, names too long for
        an index) is refused before anything is stored."""
        batch = parse_batch(records, SIGNAL_TYPES)
        if not batch.events:
            return batch.outcomes
        now = self._now()
        refused = {position: reason for event, position in zip(batch.events, batch.positions, strict=True)
                   if (reason := signal_refusal(event, now, self._retention)) is not None}
        if refused:  # before any effect: the pipeline sets them aside and hands back the others
            raise RecordsRefused(refused)
        async with self._units() as uow:
            fresh = await uow.inbox.first_deliveries(batch.events)
            await uow.slos.lock_samples_shared([event.tenantid for event in fresh])
            thresholds = {tenant_id: await self._thresholds(uow, tenant_id)
                          for tenant_id in sorted({event.tenantid for event in fresh})}
            affected = await self._store(uow.slos, fresh, thresholds)
            for (tenant_id, service), since in sorted(affected.items()):
                if since is not None:
                    await self._refresh_availability(uow.slos, tenant_id, service, since, now)
            await self._evaluate_services(uow, set(affected), now)
            await uow.commit()
        return batch.mark_duplicates(fresh)

    async def evaluate_all(self, tenant_ids: Sequence[str] | None = None) -> int:
        """The periodic pass: extend availability minutes to now and evaluate every SLO (of every tenant, or of
        `tenant_ids`). Returns the number of SLOs evaluated."""
        now = self._now()
        if tenant_ids is None:
            async with self._units() as uow:
                tenants = await uow.slos.tenants_with_config()
        else:
            tenants = list(tenant_ids)
        evaluated = 0
        for tenant_id in tenants:
            try:
                evaluated += await self._evaluate_tenant(tenant_id, now)
            except Exception as error:
                _skipped(error, "tenant %s", tenant_id)
        return evaluated

    async def _evaluate_tenant(self, tenant_id: str, now: datetime) -> int:
        async with self._units() as uow:
            slos = await self._slos(uow, tenant_id)
            for service in sorted({slo.service for slo in slos if isinstance(slo.sli, AvailabilitySli)}):
                last = await uow.slos.last_availability_minute(tenant_id, service)
                since = last if last is not None else await uow.slos.first_state_change(tenant_id, service)
                if since is not None:
                    await self._refresh_availability(uow.slos, tenant_id, service, since, now)
            evaluated = await self._evaluate(uow, tenant_id, slos, now)
            await uow.commit()
            return evaluated

    async def periodic_pass(self) -> None:
        """Every `slo_evaluation_interval_seconds` (app.py): evaluate every SLO (time-driven changes: ongoing
        outages, no data), then purge the threshold samples past retention (one indexed delete of what expired
        since the last pass)."""
        await self.evaluate_all()
        await self.purge_samples()

    async def purge_samples(self) -> int:
        """Delete the samples past retention, cut at a whole minute so every minute kept is complete (a backfill
        rebuilds from the first kept minute on). Returns how many were deleted."""
        async with self._units() as uow:
            purged = await uow.slos.purge_samples(minute_of(self._now() - self._retention))
            await uow.commit()
            return purged

    async def readings(self, tenant_id: str, slo_id: str | None = None) -> tuple[int | None, list[SloReading]]:
        """The tenant's configuration version and each SLO's status as of now (only `slo_id`, if given), with
        the alerts whose conditions hold. Reads only: stores, publishes and locks nothing."""
        now = self._now()
        async with self._units() as uow:  # never committed
            config = await uow.bundles.latest_source(tenant_id)
            if config is None:
                return None, []
            bundle = self._bundles.get(config)
            readings = []
            for entry in bundle.slos:
                if slo_id is not None and entry.id != slo_id:
                    continue
                slo = slo_definition(entry)
                status = await current_status(uow.slos, tenant_id, slo, bundle, now)
                readings.append(SloReading(entry.raw, slo, status, firing_alerts(slo, status)))
        return config.version, readings

    async def _thresholds(self, uow: EngineUnit, tenant_id: str
                          ) -> dict[tuple[str, str], dict[str, ThresholdSli]]:
        """The tenant's threshold SLIs by (service, sli), by series: samples are rolled up for each on arrival.
        Keyed by series name, as `Decimal('300') == Decimal('300.0')` but they are two series."""
        found: dict[tuple[str, str], dict[str, ThresholdSli]] = defaultdict(dict)
        for slo in await self._slos(uow, tenant_id):
            if isinstance(slo.sli, ThresholdSli):
                found[(slo.service, slo.sli.sli)][slo.sli.rollup_key] = slo.sli
        return found

    async def _store(self, repository: SloSeries, events: Sequence[CloudEvent],
                     thresholds: dict[str, dict[tuple[str, str], dict[str, ThresholdSli]]]
                     ) -> dict[ServiceKey, datetime | None]:
        """Store the signals; returns each touched service with the earliest instant its availability changed."""
        affected: dict[ServiceKey, datetime | None] = {}
        changes: list[dict[str, Any]] = []
        windows: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        ratios: dict[tuple[str, str, str], list[RatioMinute]] = defaultdict(list)

        def touch(key: ServiceKey, since: datetime | None) -> None:
            before = affected.get(key)
            affected[key] = since if before is None else (before if since is None else min(before, since))

        for event in events:
            if event.type == AVAILABILITY_EVENT:
                availability = AvailabilityData.model_validate(event.data)
                changes.append({"tenant_id": event.tenantid, "source": event.source, "event_id": event.id,
                                "service": availability.service, "component": availability.component,
                                "at": event.time, "state": availability.state})
                touch((event.tenantid, availability.service), event.time)
            elif event.type == MAINTENANCE_EVENT:
                maintenance = MaintenanceData.model_validate(event.data)
                windows.append({"tenant_id": event.tenantid, "service": maintenance.service,
                                "window_id": maintenance.window_id, "starts_at": maintenance.start,
                                "ends_at": maintenance.end, "status": maintenance.status, "event_time": event.time})
                touch((event.tenantid, maintenance.service), maintenance.start)
            else:
                measurement = MeasurementData.model_validate(event.data)
                if measurement.value is not None:
                    # Kept for later backfills, and counted once for every threshold configured on it when it arrives.
                    sample = Decimal(repr(measurement.value))
                    if not sample.is_finite():
                        continue
                    samples.append({"tenant_id": event.tenantid, "source": event.source, "event_id": event.id,
                                    "service": measurement.service, "sli": measurement.sli, "time": event.time,
                                    "value": sample})
                    configured = thresholds[event.tenantid].get((measurement.service, measurement.sli), {})
                    for threshold in configured.values():
                        ratios[(event.tenantid, measurement.service, threshold.rollup_key)].append(
                            RatioMinute(minute_of(event.time), int(threshold.meets(sample)), 1))
                    touch((event.tenantid, measurement.service), None)
                    continue
                if measurement.good is None or measurement.total is None or measurement.window_end is None:
                    continue
                ratios[(event.tenantid, measurement.service, measurement.sli)].append(
                    RatioMinute(ratio_minute(measurement.window_end), measurement.good, measurement.total))
                touch((event.tenantid, measurement.service), None)
        await repository.add_state_changes(changes)
        await repository.upsert_maintenance(windows)
        await repository.add_samples(samples)
        for (tenant_id, service, sli), rows in sorted(ratios.items()):
            await repository.add_ratio_minutes(tenant_id, service, sli, merge_ratio(rows))
        return affected

    async def _refresh_availability(self, repository: SloSeries, tenant_id: str, service: str,
                                    since: datetime, now: datetime) -> None:
        start = minute_of(since)
        if start >= now:
            return
        # Before reading: another replica's rewrite of these minutes commits first, and is read (not overwritten).
        await repository.lock_availability(tenant_id, service)
        changes = await repository.state_changes_since(tenant_id, service, start)
        maintenance = await repository.maintenance_between(tenant_id, service, start, now)
        rows = await asyncio.to_thread(availability_minutes, changes, maintenance, start, now)
        await repository.replace_availability_minutes(tenant_id, service, start, rows)

    async def _evaluate_services(self, uow: EngineUnit, services: set[ServiceKey], now: datetime) -> None:
        by_tenant: dict[str, set[str]] = defaultdict(set)
        for tenant_id, service in services:
            by_tenant[tenant_id].add(service)
        for tenant_id, names in sorted(by_tenant.items()):
            slos = [slo for slo in await self._slos(uow, tenant_id) if slo.service in names]
            await self._evaluate(uow, tenant_id, slos, now)

    async def _bundle(self, uow: EngineUnit, tenant_id: str, *, only_with_slos: bool = False) -> Bundle | None:
        """The tenant's latest bundle, parsed off the event loop (a large bundle takes seconds of CPU);
        `only_with_slos`: None, unparsed, when the stored bundle has no SLOs (most tenants, every pass)."""
        config = await uow.bundles.latest_source(tenant_id, only_with_slos=only_with_slos)
        if config is None:
            return None
        return await asyncio.to_thread(self._bundles.get, config)

    async def _slos(self, uow: EngineUnit, tenant_id: str) -> list[SloDefinition]:
        """The tenant's SLOs; an entry that no longer validates (a rule changed since it was applied) is skipped,
        logged and counted, and the others are kept."""
        bundle = await self._bundle(uow, tenant_id, only_with_slos=True)
        definitions = []
        for entry in [] if bundle is None else bundle.slos:
            try:
                definitions.append(slo_definition(entry))
            except ValueError as error:
                _skipped(error, "SLO %s of tenant %s", entry.id, tenant_id)
        return definitions

    async def _evaluate(self, uow: EngineUnit, tenant_id: str, slos: Sequence[SloDefinition],
                        now: datetime) -> int:
        if not slos:
            return 0
        bundle = await self._bundle(uow, tenant_id)
        outgoing: list[OutgoingEvent] = []
        evaluated = 0
        for slo in sorted(slos, key=lambda item: item.id):
            try:
                async with uow.savepoint():  # a failed SLO leaves the others' work intact
                    outgoing += await self._evaluate_slo(uow.slos, tenant_id, slo, bundle, now)
                evaluated += 1
            except Exception as error:
                _skipped(error, "SLO %s of tenant %s", slo.id, tenant_id)
        await uow.outbox.add(outgoing)
        return evaluated

    async def _evaluate_slo(self, repository: SloSeries, tenant_id: str, slo: SloDefinition,
                            bundle: Bundle | None, now: datetime) -> list[OutgoingEvent]:
        status = await current_status(repository, tenant_id, slo, bundle, now)
        stored = await repository.lock_evaluation(tenant_id, slo.id)
        firing, transitions = alert_transitions(slo, status, _alert_names(stored.firing))
        outgoing = [_alert_event(tenant_id, slo, transition, now) for transition in transitions]
        payload = status_data(status).model_dump(mode="json")
        published_at = stored.published_at
        if _comparable(payload) != _comparable(stored.status) and \
                (published_at is None or now - published_at >= self._interval):
            outgoing.append(_status_event(tenant_id, slo, payload, now))
            stored_status: dict[str, Any] | None = payload
            published_at = now
        else:
            stored_status = stored.status
        await repository.save_evaluation(tenant_id, slo.id, frozenset(firing), stored_status, published_at)
        return outgoing


async def current_status(repository: SloSeries, tenant_id: str, slo: SloDefinition, bundle: Bundle | None,
                         now: datetime) -> SloStatus:
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
        scheduled = [(window.start, window.end)
                     for window in await repository.maintenance_between(tenant_id, slo.service, since, end)]
        summed_ahead = summed_ahead and not slo.sli.maintenance and \
            not any(begin < split and finish > start for begin, finish in scheduled)
        series = await repository.availability_series(tenant_id, slo.service, since, now, slo.sli.degraded_weight,
                                                      split if summed_ahead else None)
    elif isinstance(slo.sli, TicketSlaSli):
        series = ratio_counts(await repository.ticket_sla_minutes(
            tenant_id, slo.service, slo.sli.policy, slo.sli.metric, slo.sli.priorities, since, now))
    else:
        name = slo.sli.rollup_key if isinstance(slo.sli, ThresholdSli) else slo.sli.sli
        series = await repository.ratio_series(tenant_id, slo.service, name, since, now,
                                               split if summed_ahead else None)
    # The sums, calendar checks and RRULE expansion are CPU work: a worker thread keeps the event loop (Kafka
    # heartbeats, HTTP) running while it lasts.
    return await asyncio.to_thread(_status, slo, series, now, hours, scheduled, since, end)


def _status(slo: SloDefinition, series: MinuteSeries, now: datetime, hours: BusinessCalendar | None,
            scheduled: list[tuple[datetime, datetime]], since: datetime, end: datetime) -> SloStatus:
    maintenance = list(scheduled)
    if isinstance(slo.sli, AvailabilitySli):
        maintenance += recurring_windows(slo.sli.maintenance, since, end)
    return evaluate(slo, series, now, hours, maintenance)


def _skipped(error: Exception, what: str, *args: object) -> None:
    """Count and log one item the pass skips; a lost database connection is no item's fault and ends the pass
    (the periodic task logs it and retries at the next interval)."""
    if isinstance(error, OSError) or (isinstance(error, DBAPIError) and error.connection_invalidated):
        raise error
    BACKGROUND_FAILURES.labels(task=_TASK).inc()
    # The item's own template is filled first, so the log call's format string stays a constant (ruff G).
    log.error("SLO evaluation skipped %s: %s", what % args, error, exc_info=error)


def status_data(status: SloStatus) -> SloStatusData:
    """`slo.status.v1`: `sli_value` and `objective` in percent; budgets in the SLI's unit (seconds or events)."""
    return SloStatusData(
        slo_id=status.slo_id, service=status.service, window_start=status.window_start,
        window_end=status.window_end,
        sli_value=None if status.sli_value is None else float(status.sli_value * 100),
        objective=float(status.objective), good=float(status.good), total=float(status.total),
        error_budget_total=float(status.error_budget_total),
        error_budget_remaining=float(status.error_budget_remaining),
        burn_rates={name: None if rate is None else float(rate) for name, rate in status.burn_rates().items()},
    )


def _comparable(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """A status without its window bounds: a rolling window moves every second without anything changing."""
    if payload is None:
        return None
    return {key: value for key, value in payload.items() if key not in ("window_start", "window_end")}


def _alert_names(names: frozenset[str]) -> frozenset[AlertName]:
    known: tuple[AlertName, ...] = ("page", "ticket", "budget_exhausted", "no_data")
    return frozenset(name for name in known if name in names)


def _status_event(tenant_id: str, slo: SloDefinition, payload: dict[str, Any], now: datetime) -> OutgoingEvent:
    event = make_event(event_id=f"{slo.id}:status@{now.isoformat()}", source=SOURCE, event_type=SLO_STATUS_EVENT,
                       time=now, tenant_id=tenant_id, subject=slo.service, data=SloStatusData.model_validate(payload))
    return OutgoingEvent(topic=topics.SLO_STATUS, key=topics.service_key(tenant_id, slo.service), event=event)


def _alert_event(tenant_id: str, slo: SloDefinition, transition: AlertTransition, now: datetime) -> OutgoingEvent:
    data = SloAlertData(slo_id=slo.id, alert=transition.alert, state=transition.state,
                        burn_rate=None if transition.burn_rate is None else float(transition.burn_rate),
                        windows={key: _json(value) for key, value in transition.windows.items()})
    event = make_event(event_id=f"{slo.id}:{transition.alert}:{transition.state}@{now.isoformat()}", source=SOURCE,
                       event_type=SLO_ALERT_EVENT, time=now, tenant_id=tenant_id, subject=slo.service, data=data)
    return OutgoingEvent(topic=topics.SLO_ALERTS, key=topics.service_key(tenant_id, slo.service), event=event)


def _json(value: object) -> str | int | float | None:
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)

