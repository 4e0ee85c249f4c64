"""Configuration lifecycle: apply a bundle as a new version, recalculate explicitly, simulate a draft.

Applying never rewrites history by itself: each ticket keeps the version it was pinned to unless the
caller asks to recalculate `ongoing` (tickets with a running or paused clock) or `all` tickets. Every
recalculation returns a diff report of the clocks whose outcome changes.

Threshold SLIs are the exception that does look back: a threshold series (service, `threshold:<sli><op><value>`)
the new version has and the version before it did not is rebuilt from the stored samples in the same
transaction (docs/slo.md "Threshold samples and backfill"), so an added or changed threshold starts with the
history the samples hold. Re-applying a bundle adds no series and so changes no rollup.

Every apply also announces each calendar of the new version (`sla.calendar.v1` on the compacted
`sla.calendars.v1`, keyed by tenant and calendar) through the outbox, in the apply's transaction: reporting
counts a running clock's working time with the calendar the engine counts it with (docs/reporting.md).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from sla_engine.domain.bundle import Bundle, dump_bundle, parse_bundle
from sla_engine.domain.clocks import Clock, evaluate_ticket
from sla_engine.domain.recalculation import ClockChange, Recalculation, RecalculationReport, attainment, compare
from sla_engine.domain.slo.backfill import added_threshold_series
from slm_shared import topics
from slm_shared.events import CALENDAR_EVENT, CalendarData, make_event
from slm_shared.outbox import OutgoingEvent

if TYPE_CHECKING:
    from datetime import datetime

    from sla_engine.bundles.cache import BundleCache
    from sla_engine.ports import EngineUnit, EngineUnits, Reconciler
    from slm_shared.business_time import CalendarConfig

SOURCE = "slm://sla-engine"


def calendar_data(config: CalendarConfig, version: int) -> CalendarData:
    """A calendar of bundle `version` as the `sla.calendar.v1` contract carries it."""
    return CalendarData(
        calendar_id=config.name,
        bundle_version=version,
        timezone=config.timezone,
        hours=config.hours,
        holidays_country=config.holidays_country,
        holidays_subdivision=config.holidays_subdivision,
        extra_holidays=tuple(sorted(config.extra_holidays)),
        extra_workdays=config.extra_workdays,
    )


def calendar_events(tenant_id: str, version: int, bundle: Bundle, now: datetime) -> list[OutgoingEvent]:
    """One `sla.calendar.v1` per calendar the version defines (the built-in 24x7 is everyone's already).

    The event id names calendar and version, so an outbox row relayed twice is one event to its consumers."""
    return [
        OutgoingEvent(
            topic=topics.CALENDARS,
            key=topics.calendar_key(tenant_id, config.name),
            event=make_event(
                event_id=f"calendar:{config.name}@{version}",
                source=SOURCE,
                event_type=CALENDAR_EVENT,
                time=now,
                tenant_id=tenant_id,
                subject=config.name,
                data=calendar_data(config, version),
            ),
        )
        for config in bundle.calendars
    ]


class ConfigService:
    """Applies, recalculates and simulates bundles, each in one unit of work."""

    def __init__(self, units: EngineUnits, bundles: BundleCache, reconciler: Reconciler) -> None:
        self._units = units
        self._bundles = bundles
        self._reconciler = reconciler

    async def apply(
        self,
        tenant_id: str,
        text: str,
        content_type: Literal["yaml", "json"],
        mode: Recalculation,
        now: datetime,
    ) -> RecalculationReport:
        """Validate (raises `BundleError`, changing nothing), store a new version, announce its calendars,
        recalculate as asked, and backfill the threshold series the version adds from the stored samples, all
        in one transaction."""
        # Off the event loop: a large bundle parses for a while and validation probes recurrence rules (up to
        # ~1 s for one that never occurs), and heartbeats and requests must go on.
        bundle = await asyncio.to_thread(parse_bundle, text, content_type=content_type)
        version: int | None = None
        try:
            async with self._units() as uow:
                previous = await uow.bundles.latest_source(tenant_id)
                version = await uow.bundles.add_config(tenant_id, dump_bundle(bundle), text)
                # Kept before the recalculation below evaluates with it, so this process never parses it again.
                self._bundles.keep((tenant_id, version), bundle)
                report = RecalculationReport(mode, previous.version if previous else None, version)
                await uow.outbox.add(calendar_events(tenant_id, version, bundle, now))
                if mode != "none":
                    await self._recalculate(uow, tenant_id, version, report, now)
                await self._backfill_thresholds(uow, tenant_id, version, bundle)
                await uow.commit()
                return report
        except BaseException:
            # Rolled back: the next apply takes the same version number for another text.
            if version is not None:
                self._bundles.forget((tenant_id, version))
            raise

    async def _backfill_thresholds(self, uow: EngineUnit, tenant_id: str, version: int, bundle: Bundle) -> None:
        # The version before, read under add_config's apply lock (`latest_config` above is read before it).
        before = await uow.bundles.config(tenant_id, version - 1)
        added = added_threshold_series(None if before is None else self._bundles.get(before), bundle)
        if not added:
            return
        # Last, so signal batches of the tenant wait only for the backfill and the commit, not a recalculation.
        await uow.signals.lock_samples_exclusive(tenant_id)
        for service, threshold in added:
            await uow.rollups.rebuild_threshold_series(tenant_id, service, threshold)

    async def recalculate(self, tenant_id: str, mode: Recalculation, now: datetime) -> RecalculationReport:
        """Move tickets to the latest version without applying a new bundle."""
        async with self._units() as uow:
            latest = await uow.bundles.latest_source(tenant_id)
            if latest is None:
                return RecalculationReport(mode, None, 0)
            report = RecalculationReport(mode, None, latest.version)
            if mode != "none":
                await self._recalculate(uow, tenant_id, latest.version, report, now)
            await uow.commit()
            return report

    async def _recalculate(
        self, uow: EngineUnit, tenant_id: str, version: int, report: RecalculationReport, now: datetime
    ) -> None:
        tickets = await uow.tickets.tickets(tenant_id, only_open=(report.mode == "ongoing"))
        report.tickets_considered = len(tickets)
        for ticket_id in tickets:
            await uow.tickets.lock_ticket(tenant_id, ticket_id)
            timeline = await uow.tickets.timeline(tenant_id, ticket_id)
            pinned = await uow.bundles.config_for_ticket(tenant_id, ticket_id, timeline[0].time)
            before = (
                evaluate_ticket(timeline, self._bundles.get(pinned), policy_version=pinned.version, at=now)
                if pinned
                else []
            )
            await uow.bundles.pin_version(tenant_id, [ticket_id], version)
            after = await self._reconciler.reconcile(uow, tenant_id, ticket_id, now)
            report.clocks_changed.extend(compare(ticket_id, before, after))

    async def simulate(
        self,
        tenant_id: str,
        draft_text: str,
        content_type: Literal["yaml", "json"],
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> dict[str, Any]:
        """Replay the tickets active in [start, end) under the draft; nothing is stored or emitted."""
        draft = await asyncio.to_thread(parse_bundle, draft_text, content_type=content_type)
        before_clocks: list[Clock] = []
        after_clocks: list[Clock] = []
        changes: list[ClockChange] = []
        # Never committed: config_for_ticket may pin unpinned tickets, and a simulation stores nothing.
        async with self._units() as uow:
            tickets = await uow.tickets.tickets_active_between(tenant_id, start, end)
            latest = await uow.bundles.latest_source(tenant_id)
            for ticket_id in tickets:
                timeline = await uow.tickets.timeline(tenant_id, ticket_id)
                pinned = await uow.bundles.config_for_ticket(tenant_id, ticket_id, timeline[0].time)
                before = (
                    evaluate_ticket(timeline, self._bundles.get(pinned), policy_version=pinned.version, at=now)
                    if pinned
                    else []
                )
                after = evaluate_ticket(timeline, draft, policy_version=(latest.version + 1 if latest else 1), at=now)
                before_clocks.extend(before)
                after_clocks.extend(after)
                changes.extend(compare(ticket_id, before, after))
        return {
            "tickets": len(tickets),
            "before": {g: vars(a) | {"percent": a.percent} for g, a in attainment(before_clocks, start, end).items()},
            "after": {g: vars(a) | {"percent": a.percent} for g, a in attainment(after_clocks, start, end).items()},
            "clocks_changed": [vars(c) for c in changes],
        }
