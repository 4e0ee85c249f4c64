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
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.admission import signal_refusal
from sla_engine.domain.slo.alerts import AlertName, AlertTransition, alert_transitions, firing_alerts
from sla_engine.domain.slo.definition import AvailabilitySli, SloDefinition, ThresholdSli
from sla_engine.domain.slo.evaluation import SloStatus
from sla_engine.domain.slo.rollups import RatioMinute, availability_minutes, merge_ratio, minute_of, ratio_minute
from sla_engine.slos.publication import alert_event, alert_names, comparable_status, status_data, status_event
from sla_engine.slos.status import current_status
from slm_shared.background import BACKGROUND_FAILURES
from slm_shared.consumer import RecordsRefused, parse_batch
from slm_shared.events import (
    AVAILABILITY_EVENT,
    MAINTENANCE_EVENT,
    MEASUREMENT_EVENT,
    AvailabilityData,
    CloudEvent,
    MaintenanceData,
    MeasurementData,
)
from slm_shared.time_source import Now, utc_now

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

    from sla_engine.bundles.cache import BundleCache
    from sla_engine.domain.bundle import Bundle
    from sla_engine.ports import EngineUnit, EngineUnits
    from slm_shared.outbox import OutgoingEvent

log = logging.getLogger(__name__)

SIGNAL_TYPES = (AVAILABILITY_EVENT, MEASUREMENT_EVENT, MAINTENANCE_EVENT)
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

    def __init__(
        self,
        units: EngineUnits,
        bundles: BundleCache,
        now: Now = utc_now,
        *,
        status_interval_seconds: float = 10.0,
        sample_retention_days: int = 100,
    ) -> None:
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
        refused = {
            position: reason
            for event, position in zip(batch.events, batch.positions, strict=True)
            if (reason := signal_refusal(event, now, self._retention)) is not None
        }
        if refused:  # before any effect: the pipeline sets them aside and hands back the others
            raise RecordsRefused(refused)
        async with self._units() as uow:
            fresh = await uow.inbox.first_deliveries(batch.events)
            await uow.signals.lock_samples_shared([event.tenantid for event in fresh])
            thresholds = {
                tenant_id: await self._thresholds(uow, tenant_id)
                for tenant_id in sorted({event.tenantid for event in fresh})
            }
            affected = await self._store(uow, fresh, thresholds)
            for (tenant_id, service), since in sorted(affected.items()):
                if since is not None:
                    await self._refresh_availability(uow, tenant_id, service, since, now)
            await self._evaluate_services(uow, set(affected), now)
            await uow.commit()
        return batch.mark_duplicates(fresh)

    async def evaluate_all(self, tenant_ids: Sequence[str] | None = None) -> int:
        """The periodic pass: extend availability minutes to now and evaluate every SLO (of every tenant, or of
        `tenant_ids`). Returns the number of SLOs evaluated."""
        now = self._now()
        if tenant_ids is None:
            async with self._units() as uow:
                tenants = await uow.bundles.tenants_with_config()
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
                last = await uow.rollups.last_availability_minute(tenant_id, service)
                since = last if last is not None else await uow.signals.first_state_change(tenant_id, service)
                if since is not None:
                    await self._refresh_availability(uow, tenant_id, service, since, now)
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
            purged = await uow.signals.purge_samples(minute_of(self._now() - self._retention))
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
                status = await current_status(uow.signals, uow.series, tenant_id, slo, bundle, now)
                readings.append(SloReading(entry.raw, slo, status, firing_alerts(slo, status)))
        return config.version, readings

    async def _thresholds(self, uow: EngineUnit, tenant_id: str) -> dict[tuple[str, str], dict[str, ThresholdSli]]:
        """The tenant's threshold SLIs by (service, sli), by series: samples are rolled up for each on arrival.
        Keyed by series name, as `Decimal('300') == Decimal('300.0')` but they are two series."""
        found: dict[tuple[str, str], dict[str, ThresholdSli]] = defaultdict(dict)
        for slo in await self._slos(uow, tenant_id):
            if isinstance(slo.sli, ThresholdSli):
                found[(slo.service, slo.sli.sli)][slo.sli.rollup_key] = slo.sli
        return found

    async def _store(
        self,
        uow: EngineUnit,
        events: Sequence[CloudEvent],
        thresholds: dict[str, dict[tuple[str, str], dict[str, ThresholdSli]]],
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
                changes.append(
                    {
                        "tenant_id": event.tenantid,
                        "source": event.source,
                        "event_id": event.id,
                        "service": availability.service,
                        "component": availability.component,
                        "at": event.time,
                        "state": availability.state,
                    }
                )
                touch((event.tenantid, availability.service), event.time)
            elif event.type == MAINTENANCE_EVENT:
                maintenance = MaintenanceData.model_validate(event.data)
                windows.append(
                    {
                        "tenant_id": event.tenantid,
                        "service": maintenance.service,
                        "window_id": maintenance.window_id,
                        "starts_at": maintenance.start,
                        "ends_at": maintenance.end,
                        "status": maintenance.status,
                        "event_time": event.time,
                    }
                )
                touch((event.tenantid, maintenance.service), maintenance.start)
            else:
                measurement = MeasurementData.model_validate(event.data)
                if measurement.value is not None:
                    # Kept for later backfills, and counted once for every threshold configured on it when it arrives.
                    sample = Decimal(repr(measurement.value))
                    if not sample.is_finite():
                        continue
                    samples.append(
                        {
                            "tenant_id": event.tenantid,
                            "source": event.source,
                            "event_id": event.id,
                            "service": measurement.service,
                            "sli": measurement.sli,
                            "time": event.time,
                            "value": sample,
                        }
                    )
                    configured = thresholds[event.tenantid].get((measurement.service, measurement.sli), {})
                    for threshold in configured.values():
                        ratios[(event.tenantid, measurement.service, threshold.rollup_key)].append(
                            RatioMinute(minute_of(event.time), int(threshold.meets(sample)), 1)
                        )
                    touch((event.tenantid, measurement.service), None)
                    continue
                if measurement.good is None or measurement.total is None or measurement.window_end is None:
                    continue
                ratios[(event.tenantid, measurement.service, measurement.sli)].append(
                    RatioMinute(ratio_minute(measurement.window_end), measurement.good, measurement.total)
                )
                touch((event.tenantid, measurement.service), None)
        await uow.signals.add_state_changes(changes)
        await uow.signals.upsert_maintenance(windows)
        await uow.signals.add_samples(samples)
        for (tenant_id, service, sli), rows in sorted(ratios.items()):
            await uow.rollups.add_ratio_minutes(tenant_id, service, sli, merge_ratio(rows))
        return affected

    async def _refresh_availability(
        self, uow: EngineUnit, tenant_id: str, service: str, since: datetime, now: datetime
    ) -> None:
        start = minute_of(since)
        if start >= now:
            return
        # Before reading: another replica's rewrite of these minutes commits first, and is read (not overwritten).
        await uow.rollups.lock_availability(tenant_id, service)
        changes = await uow.signals.state_changes_since(tenant_id, service, start)
        maintenance = await uow.signals.maintenance_between(tenant_id, service, start, now)
        rows = await asyncio.to_thread(availability_minutes, changes, maintenance, start, now)
        await uow.rollups.replace_availability_minutes(tenant_id, service, start, rows)

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

    async def _evaluate(self, uow: EngineUnit, tenant_id: str, slos: Sequence[SloDefinition], now: datetime) -> int:
        if not slos:
            return 0
        bundle = await self._bundle(uow, tenant_id)
        outgoing: list[OutgoingEvent] = []
        evaluated = 0
        for slo in sorted(slos, key=lambda item: item.id):
            try:
                async with uow.savepoint():  # a failed SLO leaves the others' work intact
                    outgoing += await self._evaluate_slo(uow, tenant_id, slo, bundle, now)
                evaluated += 1
            except Exception as error:
                _skipped(error, "SLO %s of tenant %s", slo.id, tenant_id)
        await uow.outbox.add(outgoing)
        return evaluated

    async def _evaluate_slo(
        self, uow: EngineUnit, tenant_id: str, slo: SloDefinition, bundle: Bundle | None, now: datetime
    ) -> list[OutgoingEvent]:
        status = await current_status(uow.signals, uow.series, tenant_id, slo, bundle, now)
        stored = await uow.evaluations.lock_evaluation(tenant_id, slo.id)
        firing, transitions = alert_transitions(slo, status, alert_names(stored.firing))
        outgoing = [alert_event(tenant_id, slo, transition, now) for transition in transitions]
        payload = status_data(status).model_dump(mode="json")
        published_at = stored.published_at
        if comparable_status(payload) != comparable_status(stored.status) and (
            published_at is None or now - published_at >= self._interval
        ):
            outgoing.append(status_event(tenant_id, slo, payload, now))
            stored_status: dict[str, Any] | None = payload
            published_at = now
        else:
            stored_status = stored.status
        await uow.evaluations.save_evaluation(tenant_id, slo.id, frozenset(firing), stored_status, published_at)
        return outgoing


def _skipped(error: Exception, what: str, *args: object) -> None:
    """Count and log one item the pass skips; a lost database connection is no item's fault and ends the pass
    (the periodic task logs it and retries at the next interval)."""
    if isinstance(error, OSError) or (isinstance(error, DBAPIError) and error.connection_invalidated):
        raise error
    BACKGROUND_FAILURES.labels(task=_TASK).inc()
    # The item's own template is filled first, so the log call's format string stays a constant (ruff G).
    log.error("SLO evaluation skipped %s: %s", what % args, error, exc_info=error)
