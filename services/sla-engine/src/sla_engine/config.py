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
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import prometheus_client
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.domain.bundle import Bundle, dump_bundle, parse_bundle
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.clocks import Clock, evaluate_ticket
from sla_engine.domain.slo.definition import ThresholdSli
from sla_engine.repository import BundleSource, SqlSlaRepository, VersionKey
from sla_engine.slo_repository import SqlSloRepository
from slm_shared import topics
from slm_shared.business_time import CalendarConfig
from slm_shared.events import CALENDAR_EVENT, CalendarData, make_event
from slm_shared.outbox import Outbox, OutgoingEvent

Recalculation = Literal["none", "ongoing", "all"]
SOURCE = "slm://sla-engine"


class Reconciler(Protocol):
    async def reconcile(self, session: AsyncSession, tenant_id: str, ticket_id: str, now: datetime) -> list[Clock]: ...


BUNDLE_PARSES = prometheus_client.Counter("slm_bundle_parses_total", "Configuration versions parsed from stored text")


class BundleCache:
    """Parsed bundles by (tenant, version): versions are immutable, so entries never go stale. Each version is
    parsed once per process (a thousand policies take seconds); `slm_bundle_parses_total` counts the parses."""

    def __init__(self, limit: int = 1024) -> None:
        self._bundles: dict[VersionKey, Bundle] = {}
        self._limit = limit

    def __contains__(self, version: object) -> bool:
        return version in self._bundles

    def cached(self, version: VersionKey) -> Bundle | None:
        return self._bundles.get(version)

    def get(self, config: BundleSource) -> Bundle:
        """The version's bundle, parsed from its text if this process has not parsed it yet."""
        key = (config.tenant_id, config.version)
        bundle = self._bundles.get(key)
        if bundle is None:
            bundle = parse_source(config)
            BUNDLE_PARSES.inc()
            self.keep(key, bundle)
        return bundle

    def forget(self, version: VersionKey) -> None:
        self._bundles.pop(version, None)

    def keep(self, version: VersionKey, bundle: Bundle) -> None:
        """Remember a version's bundle (one parsed when it was applied: the same text gives the same bundle)."""
        if len(self._bundles) >= self._limit:
            self._bundles.clear()
        self._bundles[version] = bundle


def parse_source(config: BundleSource) -> Bundle:
    """A stored version's bundle, from its text (accepted when it was applied)."""
    return parse_bundle(config.source_text, content_type=_content_type_of(config.source_text), stored=True)


def _content_type_of(text: str) -> Literal["yaml", "json"]:
    return "json" if text.lstrip().startswith("{") else "yaml"


@dataclass(frozen=True)
class ClockChange:
    ticket_id: str
    policy_id: str
    metric: str
    cycle: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass
class RecalculationReport:
    mode: Recalculation
    from_version: int | None
    to_version: int
    tickets_considered: int = 0
    clocks_changed: list[ClockChange] = field(default_factory=list)


def outcome(clock: Clock) -> dict[str, Any]:
    """The fields a customer would notice change: state, breach, target and deadline."""
    return {
        "state": clock.state, "breached": clock.breached, "target_seconds": clock.target_seconds,
        "due_at": clock.due_at.isoformat() if clock.due_at else None,
        "breached_at": clock.breached_at.isoformat() if clock.breached_at else None,
        "policy_version": clock.policy_version,
    }


def compare(ticket_id: str, before: list[Clock], after: list[Clock]) -> list[ClockChange]:
    def key(c: Clock) -> tuple[str, str, int]:
        return (c.policy_id, c.metric, c.cycle)

    old = {key(c): outcome(c) for c in before}
    new = {key(c): outcome(c) for c in after}
    changes = []
    for k in sorted(old.keys() | new.keys()):
        o, n = old.get(k), new.get(k)
        comparable_o = {f: v for f, v in (o or {}).items() if f != "policy_version"}
        comparable_n = {f: v for f, v in (n or {}).items() if f != "policy_version"}
        if o is None or n is None or comparable_o != comparable_n:
            changes.append(ClockChange(ticket_id, k[0], k[1], k[2], o, n))
    return changes


@dataclass(frozen=True)
class Attainment:
    met: int
    breached: int

    @property
    def percent(self) -> float | None:
        total = self.met + self.breached
        return None if total == 0 else round(100.0 * self.met / total, 2)


def attainment(clocks: list[Clock], start: datetime, end: datetime) -> dict[str, Attainment]:
    """Per policy/metric/priority: cycles that stopped in [start, end) as met or breached."""
    counts: Counter[tuple[str, str]] = Counter()
    for clock in clocks:
        if clock.stopped_at is None or not (start <= clock.stopped_at < end) or clock.state == "cancelled":
            continue
        group = f"{clock.policy_id}/{clock.metric}/{clock.priority}"
        counts[(group, "met" if clock.state == "met" else "breached")] += 1
    groups = sorted({g for g, _ in counts})
    return {g: Attainment(counts[(g, "met")], counts[(g, "breached")]) for g in groups}


def added_threshold_series(before: Bundle | None, after: Bundle) -> list[tuple[str, ThresholdSli]]:
    """The (service, threshold) series of `after` that `before` lacks, in a stable order; several SLOs sharing
    one series count once. Series `before` had were kept current on arrival and need no backfill."""

    def series(bundle: Bundle | None) -> dict[tuple[str, str], tuple[str, ThresholdSli]]:
        # Keyed by the series name: Decimal('300') == Decimal('300.0'), but they are two series.
        found = {}
        for entry in bundle.slos if bundle is not None else ():
            slo = slo_definition(entry)
            if isinstance(slo.sli, ThresholdSli):
                found[(slo.service, slo.sli.rollup_key)] = (slo.service, slo.sli)
        return found

    known = series(before)
    return [item for key, item in sorted(series(after).items()) if key not in known]


def calendar_data(config: CalendarConfig, version: int) -> CalendarData:
    """A calendar of bundle `version` as the `sla.calendar.v1` contract carries it."""
    return CalendarData(
        calendar_id=config.name, bundle_version=version, timezone=config.timezone, hours=config.hours,
        holidays_country=config.holidays_country, holidays_subdivision=config.holidays_subdivision,
        extra_holidays=tuple(sorted(config.extra_holidays)), extra_workdays=config.extra_workdays,
    )


def calendar_events(tenant_id: str, version: int, bundle: Bundle, now: datetime) -> list[OutgoingEvent]:
    """One `sla.calendar.v1` per calendar the version defines (the built-in 24x7 is everyone's already).

    The event id names calendar and version, so an outbox row relayed twice is one event to its consumers."""
    return [
        OutgoingEvent(
            topic=topics.CALENDARS, key=topics.calendar_key(tenant_id, config.name),
            event=make_event(event_id=f"calendar:{config.name}@{version}", source=SOURCE, event_type=CALENDAR_EVENT,
                             time=now, tenant_id=tenant_id, subject=config.name, data=calendar_data(config, version)),
        )
        for config in bundle.calendars
    ]


class ConfigService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], bundles: BundleCache, reconciler: Reconciler
    ) -> None:
        self._sessions = sessions
        self._bundles = bundles
        self._reconciler = reconciler
        self._outbox = Outbox(tables.outbox)

    async def apply(
        self, tenant_id: str, text: str, content_type: Literal["yaml", "json"], mode: Recalculation,
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
            async with self._sessions() as session, session.begin():
                repository = SqlSlaRepository(session)
                previous = await repository.latest_source(tenant_id)
                version = await repository.add_config(tenant_id, dump_bundle(bundle), text)
                # Kept before the recalculation below evaluates with it, so this process never parses it again.
                self._bundles.keep((tenant_id, version), bundle)
                report = RecalculationReport(mode, previous.version if previous else None, version)
                await self._outbox.add(session, calendar_events(tenant_id, version, bundle, now))
                if mode != "none":
                    await self._recalculate(session, tenant_id, version, report, now)
                await self._backfill_thresholds(session, tenant_id, version, bundle)
                return report
        except BaseException:
            # Rolled back: the next apply takes the same version number for another text.
            if version is not None:
                self._bundles.forget((tenant_id, version))
            raise

    async def _backfill_thresholds(self, session: AsyncSession, tenant_id: str, version: int, bundle: Bundle) -> None:
        # The version before, read under add_config's apply lock (`latest_config` above is read before it).
        before = await SqlSlaRepository(session).config(tenant_id, version - 1)
        added = added_threshold_series(None if before is None else self._bundles.get(before), bundle)
        if not added:
            return
        repository = SqlSloRepository(session)
        # Last, so signal batches of the tenant wait only for the backfill and the commit, not a recalculation.
        await repository.lock_samples_exclusive(tenant_id)
        for service, threshold in added:
            await repository.rebuild_threshold_series(tenant_id, service, threshold)

    async def recalculate(self, tenant_id: str, mode: Recalculation, now: datetime) -> RecalculationReport:
        """Move tickets to the latest version without applying a new bundle."""
        async with self._sessions() as session, session.begin():
            latest = await SqlSlaRepository(session).latest_source(tenant_id)
            if latest is None:
                return RecalculationReport(mode, None, 0)
            report = RecalculationReport(mode, None, latest.version)
            if mode != "none":
                await self._recalculate(session, tenant_id, latest.version, report, now)
            return report

    async def _recalculate(
        self, session: AsyncSession, tenant_id: str, version: int, report: RecalculationReport, now: datetime
    ) -> None:
        repository = SqlSlaRepository(session)
        tickets = await repository.tickets(tenant_id, only_open=(report.mode == "ongoing"))
        report.tickets_considered = len(tickets)
        for ticket_id in tickets:
            await repository.lock_ticket(tenant_id, ticket_id)
            timeline = await repository.timeline(tenant_id, ticket_id)
            pinned = await repository.config_for_ticket(tenant_id, ticket_id, timeline[0].time)
            before = (
                evaluate_ticket(timeline, self._bundles.get(pinned), policy_version=pinned.version, at=now)
                if pinned else []
            )
            await repository.pin_version(tenant_id, [ticket_id], version)
            after = await self._reconciler.reconcile(session, tenant_id, ticket_id, now)
            report.clocks_changed.extend(compare(ticket_id, before, after))

    async def simulate(
        self, tenant_id: str, draft_text: str, content_type: Literal["yaml", "json"], start: datetime,
        end: datetime, now: datetime,
    ) -> dict[str, Any]:
        """Replay the tickets active in [start, end) under the draft; nothing is stored or emitted."""
        draft = await asyncio.to_thread(parse_bundle, draft_text, content_type=content_type)
        before_clocks: list[Clock] = []
        after_clocks: list[Clock] = []
        changes: list[ClockChange] = []
        async with self._sessions() as session:
            repository = SqlSlaRepository(session)
            tickets = await repository.tickets_active_between(tenant_id, start, end)
            latest = await repository.latest_source(tenant_id)
            for ticket_id in tickets:
                timeline = await repository.timeline(tenant_id, ticket_id)
                pinned = await repository.config_for_ticket(tenant_id, ticket_id, timeline[0].time)
                before = (
                    evaluate_ticket(timeline, self._bundles.get(pinned), policy_version=pinned.version, at=now)
                    if pinned else []
                )
                after = evaluate_ticket(timeline, draft, policy_version=(latest.version + 1 if latest else 1), at=now)
                before_clocks.extend(before)
                after_clocks.extend(after)
                changes.extend(compare(ticket_id, before, after))
            await session.rollback()  # config_for_ticket may pin unpinned tickets: a simulation stores nothing
        return {
            "tickets": len(tickets),
            "before": {g: vars(a) | {"percent": a.percent} for g, a in attainment(before_clocks, start, end).items()},
            "after": {g: vars(a) | {"percent": a.percent} for g, a in attainment(after_clocks, start, end).items()},
            "clocks_changed": [vars(c) for c in changes],
        }
