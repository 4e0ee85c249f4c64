"""Hypothesis against a real intake process: arbitrary HTTP bodies and raw Kafka bytes.

Properties: no 5xx, the process never dies, every good event is delivered exactly once (read back from the
output topic with a fresh consumer group and counted by id), and garbage on Kafka ends in the DLQ as sent.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localstack import REPO, Stack
from scripts.processes import ServiceProcess, create_api_key
from slm_shared import topics
from tests.integration.intake.support import Keys, Tenant, TopicReader, drained, ensure_topic, unique

pytestmark = pytest.mark.integration

BATCH = "application/cloudevents-batch+json"
ALLOWED_STATUSES = {202, 400, 403, 413, 415}
STATUSES = ["new", "open", "in_progress", "pending_customer", "on_hold", "resolved", "closed"]
NOW = datetime.now(UTC)

# What a good event may carry: no U+0000, no surrogates, 64-bit integers (intake's text and number rules).
clean_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
clean_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(clean_text, inner, max_size=4),
    max_leaves=12,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def good_events(draw: st.DrawFn, tenant: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"good-{draw(st.uuids())}",
        "source": "fuzz://desk",
        "type": "itsm.ticket.v1",
        "time": (NOW - timedelta(seconds=draw(st.integers(0, 86_400)))).isoformat(),
        "tenantid": tenant,
        "data": {
            "ticket_id": f"FZ-{draw(st.integers(1, 20))}",
            "action": "updated",
            "kind": "incident",
            "service": "email",
            "customer": "acme",
            "priority": draw(st.sampled_from(["P1", "P2", "P3"])),
            "status": draw(st.sampled_from(STATUSES)),
            "attributes": draw(st.dictionaries(clean_text, clean_values, max_size=3)),
        },
    }


@st.composite
def mutated_events(draw: st.DrawFn, tenant: str) -> dict[str, Any]:
    """A good event with one thing broken (or, by luck, still valid): it gets an id of its own."""
    event = draw(good_events(tenant))
    event["id"] = f"mutant-{draw(st.uuids())}"
    target = draw(st.sampled_from(["envelope", "data", "drop"]))
    if target == "envelope":
        event[draw(st.sampled_from([*event, "extra", "data_base64"]))] = draw(json_values)
    elif target == "data":
        event["data"][draw(st.sampled_from([*event["data"], "unknown"]))] = draw(json_values)
    else:
        event.pop(draw(st.sampled_from(sorted(event))))
    return event


def items(tenant: str) -> st.SearchStrategy[Any]:
    return st.one_of(good_events(tenant), mutated_events(tenant), json_values)


@st.composite
def http_requests(draw: st.DrawFn, tenant: str) -> tuple[bytes, str | None, set[str]]:
    """A body, its Content-Type, and the ids of the good events intake must accept from it."""
    shape = draw(st.sampled_from(["single", "batch", "bytes", "truncated"]))
    content_type = draw(
        st.sampled_from([BATCH, "application/cloudevents+json", "application/json", None, "text/plain"])
    )
    if shape == "single":
        item = draw(items(tenant))
        single_ok = content_type in ("application/cloudevents+json", "application/json", None)
        return json.dumps(item).encode(), content_type, _good_ids([item]) if single_ok else set()
    if shape == "batch":
        batch = draw(st.lists(items(tenant), max_size=12))
        batch_ok = content_type in (BATCH, "application/json", None)
        return json.dumps(batch).encode(), content_type, _good_ids(batch) if batch_ok else set()
    if shape == "bytes":
        return draw(st.binary(max_size=300)), content_type, set()
    text = json.dumps(draw(st.lists(good_events(tenant), min_size=1, max_size=3)))
    return text[: draw(st.integers(0, len(text) - 1))].encode(), content_type, set()


@pytest.fixture(scope="module")
def fuzz_intake(stack: Stack) -> Iterator[ServiceProcess]:
    suffix = uuid.uuid4().hex[:10]
    process = ServiceProcess(
        "intake",
        stack,
        name=f"intake-fuzz-{suffix}",
        ingest_topic=f"test.ingest.fuzz.{suffix}",
        dead_letter_topic=f"test.ingest.dlq.fuzz.{suffix}",
        rate_limit_per_second="0",
        kafka__group_id=f"intake-fuzz-{suffix}",
        log_level="WARNING",
    ).start()
    yield process
    # uvicorn re-raises the SIGTERM it handled after its graceful shutdown: -15 is a clean stop too.
    assert process.stop() in (0, -signal.SIGTERM)


@pytest.fixture
async def fuzz_tenant(keys: Keys) -> Tenant:
    return await keys.tenant("fuzz")


def _good_ids(payload: list[Any]) -> set[str]:
    return {item["id"] for item in payload if isinstance(item, dict) and str(item.get("id", "")).startswith("good-")}


async def test_fuzzed_http_bodies_never_cause_a_server_error_and_good_events_arrive_exactly_once(
    fuzz_intake: ServiceProcess, fuzz_tenant: Tenant, stack: Stack, engine: AsyncEngine
) -> None:
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    sent_good: set[str] = set()
    reported_accepted: Counter[str] = Counter()

    with httpx.Client(base_url=fuzz_intake.url, timeout=30) as client:

        @settings(
            max_examples=150,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(request=http_requests(fuzz_tenant.id))
        def post_anything(request: tuple[bytes, str | None, set[str]]) -> None:
            body, content_type, good = request
            headers = dict(fuzz_tenant.headers)
            if content_type is not None:
                headers["Content-Type"] = content_type
            answer = client.post("/v1/events", content=body, headers=headers)
            assert answer.status_code in ALLOWED_STATUSES, (answer.status_code, answer.text)
            results = answer.json().get("results", [])
            reported_accepted.update(r["id"] for r in results if r["result"] == "accepted")
            assert good <= {r["id"] for r in results if r["result"] in ("accepted", "duplicate")}
            sent_good.update(good)

        await asyncio.to_thread(post_anything)
        assert (await asyncio.to_thread(client.get, "/healthz")).status_code == 200
    assert fuzz_intake.process is not None
    assert fuzz_intake.process.poll() is None

    await reader.read_until(lambda _: {e["id"] for e in reader.events(fuzz_tenant.id)} >= sent_good, within=120)
    await drained(engine, fuzz_tenant.id)
    await reader.read_to_end()
    await reader.stop()
    delivered = Counter(e["id"] for e in reader.events(fuzz_tenant.id))
    assert sent_good <= set(delivered)
    assert set(delivered.values()) <= {1}
    assert set(delivered) == set(reported_accepted)
    assert set(reported_accepted.values()) <= {1}


@st.composite
def kafka_records(draw: st.DrawFn, tenant: str) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["good", "mutant", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300)), kind
    item = draw({"good": good_events(tenant), "mutant": mutated_events(tenant), "json": json_values}[kind])
    return json.dumps(item).encode(), kind


async def test_fuzzed_kafka_records_never_stop_consumption_and_good_events_arrive_exactly_once(
    fuzz_intake: ServiceProcess, fuzz_tenant: Tenant, stack: Stack, engine: AsyncEngine
) -> None:
    ingest = fuzz_intake.env["INTAKE_INGEST_TOPIC"]
    dead_letter_topic = fuzz_intake.env["INTAKE_DEAD_LETTER_TOPIC"]
    await ensure_topic(stack.kafka_bootstrap, ingest)
    out = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    dead = await TopicReader(stack.kafka_bootstrap, dead_letter_topic).start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    loop = asyncio.get_running_loop()
    produced: list[tuple[bytes, str]] = []

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        records=st.lists(kafka_records(fuzz_tenant.id), min_size=1, max_size=8),
        key=st.one_of(st.none(), st.binary(max_size=16)),
    )
    def publish_anything(records: list[tuple[bytes, str]], key: bytes | None) -> None:
        async def send() -> None:
            for value, _ in records:
                await producer.send_and_wait(ingest, value, key=key)

        asyncio.run_coroutine_threadsafe(send(), loop).result(timeout=60)
        produced.extend(records)

    try:
        await asyncio.to_thread(publish_anything)
        # A last good event behind everything: it arrives only if consumption went on past the garbage.
        marker = {
            "specversion": "1.0",
            "id": f"good-marker-{uuid.uuid4()}",
            "source": "fuzz://desk",
            "type": "itsm.ticket.v1",
            "time": NOW.isoformat(),
            "tenantid": fuzz_tenant.id,
            "data": {
                "ticket_id": "FZ-1",
                "action": "updated",
                "kind": "incident",
                "service": "email",
                "customer": "acme",
                "priority": "P2",
                "status": "open",
            },
        }
        await producer.send_and_wait(ingest, json.dumps(marker).encode(), key=b"marker")
        produced.append((json.dumps(marker).encode(), "good"))
    finally:
        await producer.stop()

    good = {json.loads(value)["id"] for value, kind in produced if kind == "good"}
    garbage = {value for value, kind in produced if kind == "bytes" and not _is_json(value)}
    await out.read_until(lambda _: {e["id"] for e in out.events(fuzz_tenant.id)} >= good, within=120)
    await dead.read_until(lambda records: {r.value for r in records} >= garbage, within=120)
    await drained(engine, fuzz_tenant.id)
    await out.read_to_end()
    await out.stop()
    await dead.stop()
    delivered = Counter(e["id"] for e in out.events(fuzz_tenant.id))
    assert good <= set(delivered)
    assert set(delivered.values()) <= {1}
    assert garbage <= {record.value for record in dead.records}
    assert fuzz_intake.process is not None
    assert fuzz_intake.process.poll() is None


def _is_json(value: bytes) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def test_schemathesis_finds_no_server_error_in_intakes_openapi(
    fuzz_intake: ServiceProcess, stack: Stack, tmp_path: Path
) -> None:
    """Schemathesis 4 against the running process, bounded in examples and time."""
    key = create_api_key(stack, unique("schemathesis"))
    completed = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "st"),
            "run",
            f"{fuzz_intake.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--max-time",
            "60",
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "7",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
            "-H",
            f"Authorization: Bearer {key}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,  # its caches stay out of the repo
    )
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-2000:]
