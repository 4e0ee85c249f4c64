"""Period close: freeze each tenant's report snapshots when a period ends, publish them, amend on late events.

Safe with several replicas: a close runs under the tenant's exclusive advisory lock (event handlers hold it
shared, so no event commits into a period while it is being frozen), and `period_closes` has one row per
(tenant, period start), so a second replica finds the period closed and does nothing. Snapshots are never
updated: a late event that changes a closed period is recorded in `late_changes`, and once no further late
event has come for `amendment_quiet_seconds`, a new revision (an amendment listing what changed) is frozen
and published beside the original. The close also freezes the period's service reviews (reporting.reviews).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from reporting.domain.amendments import changes
from reporting.domain.config import PublishScope, ReportingConfig
from reporting.domain.periods import Period, periods_between
from reporting.quality import quality_results
from reporting.read_side.snapshots import report_links
from reporting.reports import REPORT_SECONDS, build_report, canonical_bytes, report_document
from slm_shared import topics
from slm_shared.background import PeriodicTask, for_each_isolated
from slm_shared.events import REPORT_PUBLISHED_EVENT, ReportPublishedData, make_event
from slm_shared.outbox import OutgoingEvent

if TYPE_CHECKING:
    from reporting.unit_of_work import ReportingUnitOfWork, Units
    from slm_shared.time_source import Now

log = logging.getLogger(__name__)
SOURCE = "slm://reporting"
MAX_BACKFILL_PERIODS = 24  # a tenant whose first event is older gets its last two years closed, not its history
# More than MAX_BACKFILL_PERIODS of the longest period kind (31-day months), plus the one in progress.
BACKFILL_HORIZON = timedelta(days=(MAX_BACKFILL_PERIODS + 1) * 31)
SNAPSHOT_CLOCKS_LIMIT = 1000


@dataclass(frozen=True)
class PublishedReport:
    report_id: str
    tenant: str
    period_start: datetime
    period_end: datetime
    label: str
    scope: dict[str, str | None]
    revision: int
    kind: str
    amends: str | None
    links: dict[str, str]


class PeriodCloser:
    def __init__(
        self, units: Units, now: Now, *, interval_seconds: float, amendment_quiet_seconds: float, base_url: str
    ) -> None:
        self._units = units
        self._now = now
        self._quiet = timedelta(seconds=amendment_quiet_seconds)
        self._base_url = base_url.rstrip("/")
        self._loop = PeriodicTask("period close pass", interval_seconds, lambda: self.close_due(self._now()))

    async def run(self) -> None:
        """The background loop: close what is due, amend what is pending, every interval, until stopped."""
        await self._loop.run()

    async def stop(self) -> None:
        await self._loop.stop()

    async def close_due(self, until: datetime, tenant: str | None = None) -> list[PublishedReport]:
        """Close every period that ended (plus the tenant's close delay) by `until`, then write due amendments.

        `until` is normally now; an operator or a test may close as of an earlier instant. Snapshots are
        stamped with the service's clock either way."""
        # One tenant's bad data must not stop the close for the tenants after it (failures are counted).
        closed = await for_each_isolated(
            "period close", await self._tenants(tenant), lambda name: self.close_tenant(name, until)
        )
        return [report for reports in closed for report in reports] + await self.amend_due(tenant)

    async def _tenants(self, tenant: str | None) -> list[str]:
        if tenant is not None:
            return [tenant]
        async with self._units() as uow:
            return await uow.closes.tenants()

    async def close_tenant(self, tenant: str, until: datetime) -> list[PublishedReport]:
        now = self._now()
        async with self._units() as uow:
            first = await uow.closes.first_event_time(tenant)
            if first is None:
                return []
            config, config_version = await uow.configs.load(tenant)
            # Only the last MAX_BACKFILL_PERIODS are closed, so an older first event (even 0001-01-01, which
            # overflows in a time zone west of UTC) need not be walked from: start a little before them.
            closable_until = until - timedelta(seconds=config.close_delay_seconds)
            if first.tzinfo is None:  # asyncpg hands the year-1 extreme back without an offset
                first = first.replace(tzinfo=UTC)
            first = max(first, closable_until - BACKFILL_HORIZON)
            due = periods_between(first, closable_until, config.timezone, config.period)[-MAX_BACKFILL_PERIODS:]
            if not due or len(await uow.closes.closed_starts(tenant, [p.start for p in due])) == len(due):
                return []
            await uow.read_models.lock_tenant_exclusive(tenant)
            closed = await uow.closes.closed_starts(tenant)
            published: list[PublishedReport] = []
            for period in due:
                if period.start in closed:
                    continue
                for scope in config.publish_scopes:
                    frozen = await self._freeze(
                        uow,
                        tenant,
                        period,
                        scope,
                        config,
                        config_version,
                        now,
                        revision=0,
                        previous=None,
                        late_events=0,
                    )
                    assert frozen is not None  # an original is always frozen
                    published.append(frozen)
                await uow.closes.record_close(tenant, period, now)
                # ISO/IEC 20000-1 10.2: a missed quality target opens a proposed improvement.
                missed = await quality_results(uow.session, tenant, period, config)
                await uow.improvements.propose_missed(tenant, period, missed, now)
                # The first whole period after an entry's completion measures its after-value (ISO 20000-1 10.2).
                await uow.improvements.measure_after_close(tenant, period, config, now)
                # Last: the frozen review lists the entries this close proposed and the reports it published.
                await uow.reviews.freeze(tenant, period, config, config_version, now)
                log.info("closed period %s of %s", period.label, tenant)
            await uow.commit()
            return published

    async def amend_due(self, tenant: str | None = None) -> list[PublishedReport]:
        now = self._now()
        async with self._units() as uow:
            pending = await uow.closes.pending_late_changes(tenant)
        quiet = [(name, start) for name, start, last in pending if last <= now - self._quiet]
        amended = await for_each_isolated(
            "period amendment",
            quiet,
            lambda row: self._amend(row[0], row[1], now),
            describe=lambda row: f"{row[0]} {row[1]:%Y-%m-%d}",
        )
        return [report for reports in amended for report in reports]

    async def _amend(self, tenant: str, period_start: datetime, now: datetime) -> list[PublishedReport]:
        async with self._units() as uow:
            await uow.read_models.lock_tenant_exclusive(tenant)
            ids = await uow.closes.claim_late_changes(tenant, period_start)
            period = await uow.closes.closed_period(tenant, period_start)
            if not ids or period is None:
                return []
            config, config_version = await uow.configs.load(tenant)
            latest = await uow.closes.latest_snapshots(tenant, period_start)
            published = []
            for previous in latest:
                scope = PublishScope.model_validate(previous["scope"])
                report = await self._freeze(
                    uow,
                    tenant,
                    period,
                    scope,
                    config,
                    config_version,
                    now,
                    revision=previous["revision"] + 1,
                    previous=previous,
                    late_events=len(ids),
                )
                if report is not None:
                    published.append(report)
            await uow.closes.mark_amended(ids, now, [p.report_id for p in published])
            await uow.commit()
            return published

    async def _freeze(
        self,
        uow: ReportingUnitOfWork,
        tenant: str,
        period: Period,
        scope: PublishScope,
        config: ReportingConfig,
        config_version: int,
        now: datetime,
        *,
        revision: int,
        previous: Any,
        late_events: int,
    ) -> PublishedReport | None:
        with REPORT_SECONDS.labels("close", "json").time():
            report = await build_report(
                uow.session,
                tenant,
                period,
                config,
                config_version,
                scope.service,
                scope.customer,
                now,
                SNAPSHOT_CLOCKS_LIMIT,
            )
            document = report_document(report)
        report_id = str(uuid.uuid4())
        amends = None
        if previous is not None:
            found = changes(previous["content"], document)
            if not found:
                log.info("late events left %s of %s unchanged: no amendment", period.label, tenant)
                return None
            amends = previous["report_id"]
            document["amendment"] = {
                "amends": amends,
                "revision": revision,
                "late_events": late_events,
                "changes": [{"path": c.path, "before": c.before, "after": c.after} for c in found],
            }
        digest = hashlib.sha256(canonical_bytes(document)).hexdigest()
        links = report_links(self._base_url, report_id)
        lineage = {
            "generator": f"slm-reporting {version('slm-reporting')}",
            "generated_at": now.isoformat(),
            "config_version": config_version,
            "config": config.model_dump(mode="json"),
            "period": {
                "start": period.start.isoformat(),
                "end": period.end.isoformat(),
                "label": period.label,
                "timezone": period.timezone,
                "kind": period.kind,
            },
            "scope": scope.model_dump(),
            "inputs": document["data_notes"]["events"],
            "method": "whole UTC days from the clock_daily/ticket_daily rollups, partial days from the raw read "
            "models, in one REPEATABLE READ transaction under the tenant's exclusive lock",
            "amends": amends,
            "content_sha256": digest,
        }
        kind = "original" if previous is None else "amendment"
        await uow.closes.add_snapshot(
            {
                "report_id": report_id,
                "tenant_id": tenant,
                "period_start": period.start,
                "period_end": period.end,
                "scope_key": scope.key,
                "scope": scope.model_dump(),
                "revision": revision,
                "kind": kind,
                "amends": amends,
                "content": document,
                "lineage": lineage,
                "content_sha256": digest,
                "created_at": now,
            }
        )
        data = ReportPublishedData(
            report_id=report_id,
            period_start=period.start,
            period_end=period.end,
            scope=scope.model_dump(),
            links=links,
            revision=revision,
            amends=amends,
        )
        event = make_event(
            event_id=report_id,
            source=SOURCE,
            event_type=REPORT_PUBLISHED_EVENT,
            time=now,
            tenant_id=tenant,
            subject=scope.key,
            data=data,
        )
        await uow.outbox.add([OutgoingEvent(topics.REPORTS, f"{tenant}/reports", event)])
        # The distribution: whoever a `report_published` rule names hears of it, planned in this transaction.
        await uow.notifications.plan_report_published(event, data, period.label, kind, now)
        return PublishedReport(
            report_id, tenant, period.start, period.end, period.label, scope.model_dump(), revision, kind, amends, links
        )
