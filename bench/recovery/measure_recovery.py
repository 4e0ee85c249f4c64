"""How long intake and the sla-engine take to be ready, and to consume again, after each kind of fault.

Not a `bench_*` file on purpose: it stops the stack's PostgreSQL and kills its broker, so it runs only when
asked: `uv run python -m bench.recovery.measure_recovery` (after `make up migrate`, with `.stackports` sourced).

Per scenario: `ready` is the seconds until `/readyz` answers 200, `flowing` until a record produced to the
ingest topic comes out on `itsm.tickets.v1` (consumer group joined, handler, outbox relay all working). Both
are counted from the moment the fault ends (process started, database or broker accepting connections).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from scripts import outages
from scripts.localstack import Stack, discover
from scripts.processes import ServiceProcess, create_api_key
from slm_shared import topics

TIMEOUT = 60.0


def MEMBERSHIP(name: str) -> dict[str, str]:  # noqa: N802 - reads as the constant it stands for
    """Static group membership (`--static`, the default) or dynamic (`--dynamic`, the behaviour before)."""
    return {} if "--dynamic" in sys.argv else {"kafka__group_instance_id": name}


def ticket(tenant: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "bench://recovery",
            "type": "itsm.ticket.v1",
            "time": datetime.now(UTC).isoformat(),
            "tenantid": tenant,
            "subject": "INC-1",
            "data": {
                "ticket_id": "INC-1",
                "action": "created",
                "kind": "incident",
                "service": "email",
                "customer": "acme",
                "priority": "P2",
                "status": "new",
            },
        }
    ).encode()


class Probe:
    """Produces one ingest record and waits for its canonical copy on the tickets topic."""

    def __init__(self, stack: Stack, tenant: str) -> None:
        self._stack = stack
        self._tenant = tenant
        # No consumer group: the measurement blocks its loop while processes start, and a group member
        # would be expelled for missing heartbeats.
        self._consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self._consumer.start()
        admin = AIOKafkaAdminClient(bootstrap_servers=self._stack.kafka_bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([topics.TICKETS])
        finally:
            await admin.close()
        partitions = [p["partition"] for p in described[0]["partitions"]]
        self._consumer.assign([TopicPartition(topics.TICKETS, p) for p in partitions])
        await self._consumer.seek_to_end()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def flowing(self, started: float) -> float:
        value = ticket(self._tenant)
        wanted = json.loads(value)["id"]
        while time.monotonic() - started < TIMEOUT:
            try:
                producer = AIOKafkaProducer(bootstrap_servers=self._stack.kafka_bootstrap)
                await producer.start()
                try:
                    await producer.send_and_wait(topics.INGEST, value, key=b"INC-1")
                finally:
                    await producer.stop()
                break
            except Exception:  # the broker is still coming back
                await asyncio.sleep(0.2)
        while time.monotonic() - started < TIMEOUT:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                if any(json.loads(r.value or b"{}").get("id") == wanted for r in records):
                    return time.monotonic() - started
        return float("nan")  # never came out within the timeout


def cpu_seconds(process: ServiceProcess) -> float:
    """CPU time the process has used (user + system): start-up cost independent of how loaded the machine is."""
    assert process.process is not None
    fields = Path(f"/proc/{process.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ready_after(process: ServiceProcess, started: float) -> float:
    while time.monotonic() - started < TIMEOUT:
        try:
            if httpx.get(f"{process.url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return float("nan")


async def measure() -> tuple[list[tuple[str, float, float]], list[tuple[str, float]]]:
    stack = discover()
    assert stack is not None, "run `make up` and source .stackports first"
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    create_api_key(stack, tenant)
    probe = Probe(stack, tenant)
    await probe.start()
    rows: list[tuple[str, float, float]] = []
    cpu: list[tuple[str, float]] = []
    intake = ServiceProcess("intake", stack, name="recovery-intake", **MEMBERSHIP("recovery-intake"))
    try:
        started = time.monotonic()
        intake.start(TIMEOUT)
        rows.append(("intake cold start", ready_after(intake, started), await probe.flowing(started)))
        cpu.append(("intake start-up CPU", cpu_seconds(intake)))

        intake.kill()
        started = time.monotonic()
        intake.start(TIMEOUT)
        rows.append(("intake after SIGKILL", ready_after(intake, started), await probe.flowing(started)))

        assert intake.process is not None
        intake.process.send_signal(signal.SIGSTOP)
        await asyncio.sleep(10)
        intake.process.send_signal(signal.SIGCONT)
        started = time.monotonic()
        rows.append(("intake after 10 s SIGSTOP", ready_after(intake, started), await probe.flowing(started)))

        outages.stop_postgres()
        await asyncio.sleep(5)
        outages.start_postgres()
        started = time.monotonic()
        rows.append(("intake after PostgreSQL restart", ready_after(intake, started), await probe.flowing(started)))

        outages.kill_broker()
        await asyncio.sleep(5)
        outages.start_broker()
        started = time.monotonic()
        rows.append(("intake after broker restart", ready_after(intake, started), await probe.flowing(started)))
    finally:
        intake.kill()
        await probe.stop()

    engine = ServiceProcess("sla-engine", stack, name="recovery-sla-engine", **MEMBERSHIP("recovery-sla-engine"))
    try:
        started = time.monotonic()
        engine.start(TIMEOUT)
        rows.append(("sla-engine cold start", ready_after(engine, started), float("nan")))
        cpu.append(("sla-engine start-up CPU", cpu_seconds(engine)))
        engine.kill()
        started = time.monotonic()
        engine.start(TIMEOUT)
        rows.append(("sla-engine after SIGKILL", ready_after(engine, started), float("nan")))
    finally:
        engine.stop()
    return rows, cpu


def main() -> None:
    rows, cpu = asyncio.run(measure())
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'scenario':<36} {'ready s':>8} {'flowing s':>10}")
    for name, ready, flowing in rows:
        print(f"{name:<36} {ready:>8.1f} {flowing:>10.1f}")
    for name, seconds in cpu:
        print(f"{name:<36} {seconds:>8.1f} CPU s until ready")


if __name__ == "__main__":
    main()
