"""The soak figures: each service's memory (RSS) and each outbox's backlog, sampled over the faulted run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from tests.faults.fleet import Fleet


@dataclass
class SoakSeries:
    rss_mib: dict[str, list[float]] = field(default_factory=dict)  # service -> total RSS of its instances
    backlog: dict[str, list[int]] = field(default_factory=dict)  # service -> unpublished outbox rows

    def describe(self) -> str:
        lines = []
        for service, values in self.rss_mib.items():
            if values:
                lines.append(f"{service}: RSS first {values[0]:.0f} MiB, max {max(values):.0f}, last {values[-1]:.0f}")
        for service, counts in self.backlog.items():
            if counts:
                lines.append(f"{service}: outbox backlog max {max(counts)}, last {counts[-1]}")
        return "\n".join(lines)


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def _backlog(url: str) -> int | None:
    try:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None  # the database is down right now: a fault, not a figure
    try:
        return int(await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    finally:
        await connection.close()


async def sample(fleet: Fleet, database_urls: dict[str, str], series: SoakSeries, every: float) -> None:
    """Runs until cancelled."""
    while True:
        for service, instances in fleet.instances.items():
            pids = [p.process.pid for p in instances if p.process is not None and p.process.poll() is None]
            series.rss_mib.setdefault(service, []).append(sum(_rss_mib(pid) for pid in pids))
            count = await _backlog(database_urls[service])
            if count is not None:
                series.backlog.setdefault(service, []).append(count)
        await asyncio.sleep(every)
