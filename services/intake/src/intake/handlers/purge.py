"""Retention: archived payloads cleared, old dedup keys, rejections and signed webhook deliveries forgotten."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from slm_shared.background import PeriodicTask, for_each_isolated
from slm_shared.time_source import Now, utc_now

if TYPE_CHECKING:
    from intake.ports import IntakeUnitsOfWork
    from intake.settings import IntakeSettings

log = logging.getLogger(__name__)


class Purger:
    """Retention: clears archived payloads, forgets old dedup keys, drops old rejections and old signed
    webhook deliveries (kept at least twice the replay window, so a timestamped one is refused for its age
    before it is forgotten), every interval."""

    def __init__(self, units: IntakeUnitsOfWork, settings: IntakeSettings, now: Now = utc_now) -> None:
        self._units = units
        self._settings = settings
        self._now = now
        self._loop = PeriodicTask("retention purge", settings.purge_interval_seconds, self._purge_and_report)

    async def purge(self, tenant_id: str | None = None, at: datetime | None = None) -> dict[str, int]:
        """Chunk after chunk, one transaction each, until nothing is left to purge; the totals per kind."""
        at = at or self._now()
        settings = self._settings
        totals = {"archive_cleared": 0, "dedup_forgotten": 0, "rejections_dropped": 0}
        while True:
            async with self._units() as uow:
                counts = await uow.received.purge(
                    archive_before=at - timedelta(days=settings.archive_retention_days),
                    dedup_before=at - timedelta(days=settings.dedup_retention_days),
                    tenant_id=tenant_id,
                )
                counts["rejections_dropped"] = await uow.rejections.purge(
                    before=at - timedelta(days=settings.rejected_retention_days), tenant_id=tenant_id
                )
                await uow.commit()
            for name, value in counts.items():
                totals[name] += value
            if not any(counts.values()):
                return totals

    async def run(self) -> None:
        """Purge every `purge_interval_seconds` until stopped; a failed pass waits for the next (never urgent)."""
        await self._loop.run()

    async def stop(self) -> None:
        await self._loop.stop()

    async def purge_each_tenant(self) -> dict[str, int]:
        """One pass: each tenant's data in turn, isolated (a tenant that fails is logged and counted in
        `slm_background_failures_total{task="retention purge"}`, the others go on), then whatever no tenant
        with a key owns (rejections without a tenant)."""
        async with self._units() as uow:
            tenants: list[str | None] = [*await uow.tenants.with_keys(), None]
        at = self._now()
        passes = await for_each_isolated(
            "retention purge",
            tenants,
            lambda tenant: self.purge(tenant, at),
            describe=lambda tenant: tenant or "data of no tenant",
        )
        totals = {"archive_cleared": 0, "dedup_forgotten": 0, "rejections_dropped": 0}
        for counts in passes:
            for name, value in counts.items():
                totals[name] += value
        return totals

    async def forget_webhook_deliveries(self) -> int:
        keep = max(
            timedelta(days=self._settings.webhook_delivery_retention_days),
            2 * timedelta(seconds=self._settings.webhook_replay_window_seconds),
        )
        async with self._units() as uow:
            forgotten = await uow.webhook_secrets.forget_deliveries(self._now() - keep)
            await uow.commit()
        return forgotten

    async def _purge_and_report(self) -> None:
        totals = await self.purge_each_tenant()
        totals["webhook_deliveries_forgotten"] = await self.forget_webhook_deliveries()
        if any(totals.values()):
            log.info("retention purge: %s", totals)
