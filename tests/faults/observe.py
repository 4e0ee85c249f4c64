"""What a run left behind for one tenant: what intake published, the clock transitions, clocks, SLOs, report."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from slm_shared import topics

VOLATILE_KEYS = {"generated_at"}  # when a document was rendered, not what it says


@dataclass(frozen=True)
class Transition:
    event_id: str
    ticket: str
    metric: str
    cycle: int
    transition: str
    threshold: float | None
    time: datetime  # the transition's instant in event time (for warnings and breaches: when due)
    produced: datetime  # the Kafka record's timestamp: when the engine published it
    data: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, int, str, float | None]:
        return (self.ticket, self.metric, self.cycle, self.transition, self.threshold)


@dataclass
class EndState:
    tenant: str
    at: datetime  # clocks are read as they stood at this instant
    published_ids: set[str]  # CloudEvent ids intake published onto tickets, signals and feedback
    transitions: list[Transition]
    clocks: dict[str, Any]  # ticket -> its clocks at `at`
    slos: dict[str, Any]
    report: Any
    report_at: datetime | None = None  # the report's instant: live running clocks are shown as they stand then

    def save(self, path: Path) -> None:
        """The evidence behind a verdict, for a person to diff."""
        path.write_text(
            json.dumps(
                {
                    "tenant": self.tenant,
                    "at": self.at.isoformat(),
                    "published_ids": sorted(self.published_ids),
                    "transitions": [
                        {"id": t.event_id, "produced": t.produced.isoformat(), "time": t.time.isoformat(), **t.data}
                        for t in self.transitions
                    ],
                    "clocks": self.clocks,
                    "slos": self.slos,
                    "report": self.report,
                },
                indent=1,
                default=str,
            )
        )


def normalized(value: Any, tenant: str) -> Any:
    """The same document for two tenants compares equal: the tenant's name and render times left out."""
    if isinstance(value, dict):
        return {k: normalized(v, tenant) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [normalized(v, tenant) for v in value]
    if isinstance(value, str):
        return value.replace(tenant, "@tenant@")
    return value


async def read_topic(bootstrap: str, topic: str, tenant: str, since: datetime) -> list[tuple[dict[str, Any], int]]:
    """The tenant's records of `topic` produced since `since`, with their timestamps (ms), up to today's end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, int(p["partition"])) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        starts = await consumer.offsets_for_times({p: int(since.timestamp() * 1000) for p in partitions})
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            found = starts.get(partition)
            consumer.seek(partition, found.offset if found is not None else ends[partition])
        records: list[tuple[dict[str, Any], int]] = []
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            for batch in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                for record in batch:
                    if record.value is None:
                        continue
                    try:
                        event = json.loads(record.value)
                    except ValueError:  # hostile bytes another suite left on the shared topic
                        continue
                    if isinstance(event, dict) and event.get("tenantid") == tenant:
                        records.append((event, record.timestamp))
        return records
    finally:
        await consumer.stop()


def transitions_of(records: list[tuple[dict[str, Any], int]]) -> list[Transition]:
    found = []
    for event, timestamp in records:
        data = event["data"]
        found.append(
            Transition(
                str(event["id"]),
                str(data["ticket_id"]),
                str(data["metric"]),
                int(data["cycle"]),
                str(data["transition"]),
                data.get("threshold"),
                datetime.fromisoformat(event["time"]),
                datetime.fromtimestamp(timestamp / 1000, UTC),
                data,
            )
        )
    return found


async def observe(
    tenant: str,
    key: str,
    bootstrap: str,
    engine_url: str,
    reporting_url: str,
    tickets: list[str],
    at: datetime,
    since: datetime,
    period: tuple[datetime, datetime],
) -> EndState:
    """The run's end state: clocks as they stood at `at`, the report of the fixed `period` (both runs read the
    same one; the default, the 30 days up to the request, would move its windows with the reading time)."""
    published: set[str] = set()
    for topic in (topics.TICKETS, topics.SIGNALS, topics.FEEDBACK):
        published.update(str(event["id"]) for event, _ in await read_topic(bootstrap, topic, tenant, since))
    transitions = transitions_of(await read_topic(bootstrap, topics.CLOCKS, tenant, since))
    headers = {"Authorization": f"Bearer {key}"}
    clocks: dict[str, Any] = {}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        gate = asyncio.Semaphore(8)

        async def read_clocks(ticket: str) -> None:
            async with gate:
                answer = await client.get(f"{engine_url}/v1/tickets/{ticket}/clocks", params={"at": at.isoformat()})
                clocks[ticket] = normalized(answer.json(), tenant) if answer.status_code == 200 else answer.status_code

        await asyncio.gather(*(read_clocks(ticket) for ticket in tickets))
        slos = (await client.get(f"{engine_url}/v1/slos")).json()
        report = (
            await client.get(
                f"{reporting_url}/v1/reports/slr",
                params={
                    "format": "json",
                    "clocks_limit": 100_000,
                    "from": period[0].isoformat(),
                    "to": period[1].isoformat(),
                },
            )
        ).json()
    return EndState(
        tenant,
        at,
        published,
        transitions,
        clocks,
        slo_view(slos),
        normalized(report, tenant),
        report_instant(report, period[1]),
    )


def report_instant(report: Any, period_end: datetime) -> datetime | None:
    """When the report shows running clocks (its render time, or the period's end if that came first)."""
    rendered = report.get("header", {}).get("generated_at") if isinstance(report, dict) else None
    if not isinstance(rendered, str):
        return None
    return min(datetime.fromisoformat(rendered.replace("Z", "+00:00")), period_end)


def slo_view(listed: dict[str, Any]) -> dict[str, Any]:
    """What of each SLO does not move with the reading instant: its objective and the bad time (or events)
    it counted. Budget totals, burn rates and alerts follow the rolling window's end, i.e. when it is read."""
    return {
        slo["slo_id"]: {
            "objective": slo["objective"],
            "bad": slo["total"] - slo["good"],
            "consumed": slo["error_budget"]["consumed"],
        }
        for slo in listed.get("slos", [])
    }
