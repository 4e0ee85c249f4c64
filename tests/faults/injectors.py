"""The faults: each one injected, lifted, then recovery measured (ready, and a probe ticket flowing end to end)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from tests.faults.fleet import Fleet
from tests.faults.infra import LocalInfra
from tests.faults.proxy import TcpFaultProxy

log = logging.getLogger("faults")
RECOVERY_BUDGET_SECONDS = 60.0  # past this, the instance did not recover by itself and is restarted by hand


@dataclass
class FaultContext:
    fleet: Fleet
    infra: LocalInfra
    proxy: TcpFaultProxy
    rng: random.Random
    stall_seconds: float  # longer than the consumers' session timeout (aiokafka's default 10 s)
    blackhole_seconds: float
    latency_seconds: float


@dataclass
class FaultOutcome:
    kind: str
    target: str
    began_at: datetime
    recovered_at: datetime  # downtime window: timers due in it must fire once after recovery
    time_to_ready: float | None  # from the dependency's return (or the relaunch) to every instance ready
    time_to_flow: float | None  # from the same instant to a probe ticket visible in reporting
    manual_restarts: int
    crash_restarts: int

    @property
    def recovered(self) -> bool:
        return self.time_to_flow is not None and self.manual_restarts == 0


class Fault(Protocol):
    kind: str
    target: str

    async def inject_and_lift(self, context: FaultContext) -> float:
        """Inject the fault, lift it; returns the monotonic instant from which recovery is timed."""


@dataclass
class KillService:
    target: str
    kind: str = "SIGKILL service"

    async def inject_and_lift(self, context: FaultContext) -> float:
        victim = context.rng.choice(context.fleet.instances[self.target])
        await asyncio.to_thread(victim.kill)
        victim.launch()  # the supervisor's restart, as Kubernetes does for a crashed container
        return time.monotonic()


@dataclass
class StallService:
    target: str
    kind: str = "SIGSTOP stall"

    async def inject_and_lift(self, context: FaultContext) -> float:
        victim = context.rng.choice(context.fleet.instances[self.target])
        assert victim.process is not None
        os.kill(victim.process.pid, signal.SIGSTOP)
        await asyncio.sleep(context.stall_seconds)
        os.kill(victim.process.pid, signal.SIGCONT)
        return time.monotonic()


@dataclass
class RollingRestart:
    target: str
    kind: str = "SIGTERM rolling restart"

    async def inject_and_lift(self, context: FaultContext) -> float:
        for instance in context.fleet.instances[self.target]:
            log.info("SIGTERM %s", instance.name)
            try:
                await asyncio.to_thread(instance.stop, 60.0)
            except subprocess.TimeoutExpired:  # did not drain in a minute: stop() killed it
                context.fleet.crash_restarts += 1
            instance.launch()
            await asyncio.to_thread(instance.wait_ready, 90.0)  # the next one only once this one serves
        return time.monotonic()


@dataclass
class KillBroker:
    target: str = "kafka"
    kind: str = "broker kill -9"
    down_seconds: float = 5.0

    async def inject_and_lift(self, context: FaultContext) -> float:
        context.infra.kill_broker()
        await asyncio.sleep(self.down_seconds)
        await asyncio.to_thread(context.infra.bring_back)
        return time.monotonic()


@dataclass
class StopPostgres:
    target: str = "postgresql"
    kind: str = "postgres immediate stop"
    down_seconds: float = 5.0

    async def inject_and_lift(self, context: FaultContext) -> float:
        await asyncio.to_thread(context.infra.stop_postgres_immediately)
        await asyncio.sleep(self.down_seconds)
        await asyncio.to_thread(context.infra.bring_back)
        return time.monotonic()


@dataclass
class ProxyLatency:
    target: str = "postgresql proxy"
    kind: str = "db latency"
    seconds: float = 10.0

    async def inject_and_lift(self, context: FaultContext) -> float:
        context.proxy.latency = context.latency_seconds
        await asyncio.sleep(self.seconds)
        context.proxy.latency = 0.0
        return time.monotonic()


@dataclass
class ProxyReset:
    target: str = "postgresql proxy"
    kind: str = "db connection reset"

    async def inject_and_lift(self, context: FaultContext) -> float:
        await asyncio.to_thread(context.proxy.reset_connections)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(context.proxy.reset_connections)
        return time.monotonic()


@dataclass
class ProxyBlackhole:
    target: str = "postgresql proxy"
    kind: str = "db blackhole"

    async def inject_and_lift(self, context: FaultContext) -> float:
        context.proxy.blackhole(context.blackhole_seconds)
        await asyncio.sleep(context.blackhole_seconds)
        return time.monotonic()


def schedule(services: tuple[str, ...], rounds: int, rng: random.Random, *, postgres: bool,
             stalled: tuple[str, ...], rolled: tuple[str, ...]) -> list[Fault]:
    """Every fault type, `rounds` times, in a shuffled order; SIGKILL against every service."""
    one_round: list[Fault] = [*(KillService(s) for s in services), *(StallService(s) for s in stalled),
                              *(RollingRestart(s) for s in rolled), KillBroker(), ProxyLatency(), ProxyReset(),
                              ProxyBlackhole()]
    if postgres:
        one_round.append(StopPostgres())
    faults = [fault for _ in range(rounds) for fault in one_round]
    rng.shuffle(faults)
    return faults


async def run_fault(fault: Fault, context: FaultContext) -> FaultOutcome:
    fleet = context.fleet
    crashes, manual = fleet.crash_restarts, fleet.manual_restarts
    began_at = datetime.now(UTC)
    log.info("injecting %s into %s", fault.kind, fault.target)
    lifted = await fault.inject_and_lift(context)
    time_to_ready = time_to_flow = None
    if await fleet.wait_ready(RECOVERY_BUDGET_SECONDS) is not None:
        time_to_ready = time.monotonic() - lifted
        if await fleet.probe_flows(RECOVERY_BUDGET_SECONDS) is not None:
            time_to_flow = time.monotonic() - lifted
    if time_to_flow is None:  # not recovered by itself: restart by hand so the run can go on, and count it
        await fleet.restart_by_hand()
        await fleet.wait_ready(RECOVERY_BUDGET_SECONDS)
        await fleet.probe_flows(RECOVERY_BUDGET_SECONDS)
    outcome = FaultOutcome(fault.kind, fault.target, began_at, datetime.now(UTC), time_to_ready, time_to_flow,
                           fleet.manual_restarts - manual, fleet.crash_restarts - crashes)
    log.info("%s %s: ready after %s s, flowing after %s s, %d crashes, %d manual restarts", outcome.kind,
             outcome.target, time_to_ready, time_to_flow, outcome.crash_restarts, outcome.manual_restarts)
    return outcome


async def fault_loop(faults: list[Fault], context: FaultContext, max_gap_seconds: float) -> list[FaultOutcome]:
    outcomes = []
    for fault in faults:
        await asyncio.sleep(context.rng.uniform(0.5, max_gap_seconds))  # a random moment of the stream
        outcomes.append(await run_fault(fault, context))
    return outcomes
