"""One fault run: the workload streamed into two instances per service while faults are injected, then the
same workload into a fresh platform with no faults, then the checker's verdict on both end states."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx

from scripts.localstack import REPO, Stack, discover
from slm_shared import topics
from tests.faults import injectors
from tests.faults.checker import Findings, check
from tests.faults.fleet import SERVICE_GROUPS, SERVICES, Fleet
from tests.faults.infra import LocalInfra
from tests.faults.injectors import FaultContext, FaultOutcome
from tests.faults.observe import EndState, normalized, observe, read_topic
from tests.faults.proxy import TcpFaultProxy
from tests.faults.sender import SenderRecord, UpstreamSender
from tests.faults.soak import SoakSeries, sample
from tests.faults.table import summary
from tests.faults.workload import BUNDLE, Workload, WorkloadShape, generate
from tests.support.kafka import skip_to_the_end

RUNS = REPO / ".stack" / "faults"
log = logging.getLogger("faults")


@dataclass(frozen=True)
class RunShape:
    workload: WorkloadShape
    rounds: int  # how many times each fault is injected
    max_gap_seconds: float  # faults come at a random moment up to this long after the previous one recovered
    stalled: tuple[str, ...] = SERVICES
    rolled: tuple[str, ...] = SERVICES
    stall_seconds: float = 13.0
    blackhole_seconds: float = 20.0
    latency_seconds: float = 0.3
    settle_seconds: float = 120.0


# The CI form (`make test`'s last step, ~5 minutes idle): every fault type once, the stream about as long as the
# fault loop so that the breaches placed in it fall due while faults run; settled once 15 s pass unchanged.
SHORT = RunShape(
    WorkloadShape(tickets=200, stream_seconds=120),
    rounds=1,
    max_gap_seconds=2.0,
    stalled=("sla-engine",),
    rolled=("sla-engine",),
    settle_seconds=60.0,
)
# No faults at all: both runs must compare equal, or the checker itself is wrong.
CALIBRATION = RunShape(
    WorkloadShape(tickets=120, stream_seconds=30), rounds=0, max_gap_seconds=1.0, settle_seconds=60.0
)
LONG = RunShape(WorkloadShape(tickets=2500, stream_seconds=1800), rounds=3, max_gap_seconds=25.0)


@dataclass
class RunResult:
    workload: Workload
    outcomes: list[FaultOutcome]
    findings: Findings
    sent: SenderRecord
    soak: SoakSeries
    durations: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        return "\n".join(
            [
                f"workload: {len(self.workload.tickets)} tickets, {len(self.workload.events)} events, "
                f"{self.workload.deliveries} deliveries in {len(self.workload.batches)} batches, "
                f"{self.workload.due_in_stream} breaches placed to fall due during the faults",
                f"sender retries: {self.sent.retries_by_cause or 'none'}; "
                f"refused batches: {len(self.sent.refused_batches)}",
                "phases: " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in self.durations.items()),
                summary(self.outcomes, self.findings),
                "soak:",
                self.soak.describe(),
            ]
        )


def through_proxy(stack: Stack, proxy_port: int) -> Stack:
    """The same stack, with every database URL pointing at the fault proxy."""

    def moved(url: str) -> str:
        parts = urlsplit(url)
        credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy_port}"))

    # The services run as their own database roles (app_database_urls): those must pass the proxy too.
    return dataclasses.replace(
        stack,
        database_urls={service: moved(url) for service, url in stack.database_urls.items()},
        app_database_urls={service: moved(url) for service, url in stack.app_database_urls.items()},
    )


async def settle(bootstrap: str, tenant: str, key: str, reporting_url: str, since: datetime, within: float) -> None:
    """Until the tenant's clock transitions and its report stop changing for 15 s (or `within` passes)."""
    deadline, last, steady = time.monotonic() + within, None, 0
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        while time.monotonic() < deadline and steady < 3:
            count = len(await read_topic(bootstrap, topics.CLOCKS, tenant, since))
            try:
                answer = await client.get(f"{reporting_url}/v1/reports/slr", params={"format": "json"})
                report = normalized(answer.json(), tenant) if answer.status_code == 200 else answer.status_code
            except httpx.HTTPError as error:
                report = str(error)
            steady = steady + 1 if (count, report) == last else 0
            last = (count, report)
            await asyncio.sleep(5)


def report_period(workload: Workload) -> tuple[datetime, datetime]:
    """The period both runs' reports cover: every event of the workload (all in the 31 hours before S) up to
    the quiet window's end, so nothing either run does falls outside it and its windows do not move."""
    return workload.start - timedelta(days=7), workload.quiet_to


async def start_fresh(fleet: Fleet, bootstrap: str) -> None:
    """Start the fleet with its consumer groups at the topics' end. What other suites left unconsumed on the
    shared stack (the flood test's hundreds of thousands of clock events) is not this run's work: a reporting
    instance draining it first made every probe "flow" only after the drain (175 s, then never in 180 s)."""
    skipped = await skip_to_the_end(bootstrap, SERVICE_GROUPS)
    log.info("consumer groups moved to the end, records left unconsumed by earlier runs skipped: %s", skipped)
    await asyncio.to_thread(fleet.start)


FaultedRun = tuple[Workload, EndState, list[FaultOutcome], SenderRecord, SoakSeries]


async def faulted_run(
    shape: RunShape, stack: Stack, rng: random.Random, since: datetime, durations: dict[str, float]
) -> FaultedRun:
    pg = urlsplit(stack.database_urls["intake"])
    proxy = TcpFaultProxy(pg.hostname or "127.0.0.1", pg.port or 5432).start()
    fleet = Fleet(through_proxy(stack, proxy.port), instances=2, prefix="faults-")
    soak = SoakSeries()
    try:
        began = time.monotonic()
        await start_fresh(fleet, stack.kafka_bootstrap)
        await asyncio.to_thread(fleet.enable_probe)
        tenant = f"faults-{uuid.uuid4().hex[:8]}"
        key = await asyncio.to_thread(fleet.new_tenant, tenant, BUNDLE)
        durations["start"] = time.monotonic() - began
        log.info("faulted run: %d instances ready, tenant %s", len(fleet.all), tenant)
        # S is now, once the fleet serves: the breaches placed in the stream fall due while the faults run, not
        # while six interpreters start.
        workload = generate(shape.workload, datetime.now(UTC).replace(microsecond=0))
        workload.save(RUNS / "workload.json")  # the recording: both runs send exactly these deliveries
        infra = LocalInfra()
        context = FaultContext(
            fleet, infra, proxy, rng, shape.stall_seconds, shape.blackhole_seconds, shape.latency_seconds
        )
        faults = injectors.schedule(
            SERVICES,
            shape.rounds,
            rng,
            postgres=infra.postgres_is_private(),
            stalled=shape.stalled,
            rolled=shape.rolled,
        )
        sampler = asyncio.create_task(sample(fleet, stack.database_urls, soak, every=5.0))
        sender = UpstreamSender(fleet.urls("intake"), key, tenant)
        began = time.monotonic()
        stream_ends = time.monotonic() + workload.stream_seconds
        sent, outcomes = await asyncio.gather(
            sender.send(workload, workload.stream_seconds),
            injectors.fault_loop(
                faults,
                context,
                shape.max_gap_seconds,
                until=stream_ends,
                every_kind=len(faults) // max(1, shape.rounds),
            ),
        )
        durations["faults"] = time.monotonic() - began
        log.info("faults done; %d acknowledged; settling", len(sent.acknowledged))
        began = time.monotonic()
        await settle(stack.kafka_bootstrap, tenant, key, fleet.urls("reporting")[0], since, shape.settle_seconds)
        sampler.cancel()
        state = await observe(
            tenant,
            key,
            stack.kafka_bootstrap,
            fleet.urls("sla-engine")[0],
            fleet.urls("reporting")[0],
            workload.tickets,
            datetime.now(UTC),
            since,
            report_period(workload),
        )
        durations["settle+observe"] = time.monotonic() - began
        return workload, state, outcomes, sent, soak
    finally:
        await asyncio.to_thread(fleet.stop)
        proxy.stop()


async def clean_run(
    shape: RunShape, stack: Stack, workload: Workload, at: datetime, since: datetime, durations: dict[str, float]
) -> EndState:
    fleet = Fleet(stack, instances=1, prefix="clean-")
    began = time.monotonic()
    try:
        await start_fresh(fleet, stack.kafka_bootstrap)
        tenant = f"clean-{uuid.uuid4().hex[:8]}"
        key = await asyncio.to_thread(fleet.new_tenant, tenant, BUNDLE)
        log.info("clean run: tenant %s", tenant)
        await UpstreamSender(fleet.urls("intake"), key, tenant).send(workload, 0)
        await settle(stack.kafka_bootstrap, tenant, key, fleet.urls("reporting")[0], since, shape.settle_seconds)
        return await observe(
            tenant,
            key,
            stack.kafka_bootstrap,
            fleet.urls("sla-engine")[0],
            fleet.urls("reporting")[0],
            workload.tickets,
            at,
            since,
            report_period(workload),
        )
    finally:
        await asyncio.to_thread(fleet.stop)
        durations["clean run"] = time.monotonic() - began


async def run(shape: RunShape) -> RunResult:
    stack = discover()
    if stack is None:
        raise RuntimeError("no stack: run `make up` first")
    rng = random.Random(shape.workload.seed)
    since = datetime.now(UTC) - timedelta(seconds=5)
    RUNS.mkdir(parents=True, exist_ok=True)
    durations: dict[str, float] = {}
    workload, faulted, outcomes, sent, soak = await faulted_run(shape, stack, rng, since, durations)
    if faulted.at > workload.quiet_to:
        raise RuntimeError("the faulted run outlasted the workload's quiet window: timers would not compare")
    clean = await clean_run(shape, stack, workload, faulted.at, since, durations)
    if datetime.now(UTC) > workload.quiet_to:
        raise RuntimeError("the clean run outlasted the workload's quiet window: its timers would not compare")
    faulted.save(RUNS / "faulted-end-state.json")
    clean.save(RUNS / "clean-end-state.json")
    findings = check(faulted, clean, sent, outcomes, workload.start)
    result = RunResult(workload, outcomes, findings, sent, soak, durations)
    (RUNS / "last-result.txt").write_text(result.describe() + "\n")
    return result
