"""The sla-engine's clock evaluation worker process ends with the service, however the service ends: stopped as
Kubernetes stops it (SIGTERM; uvicorn re-raises the signal after its shutdown, so no exit handler runs) or
SIGKILLed. Before, the worker and multiprocessing's resource tracker stayed behind, orphaned and blocked on
their pipes, about 100 MiB each time: two or three per CI run on the machine that ran it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from scripts import outages
from scripts.localstack import Stack
from scripts.processes import ServiceProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform != "linux", reason="the kernel's parent-death signal is Linux's"),
]

GIVE_UP_SECONDS = 30  # a guard against a hang, not a measurement


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command (the state, then the parent), or None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children_of(parent: int) -> list[int]:
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None and int(fields[1]) == parent
    ]


def running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has ended; only reaping it is left


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGKILL"])
def test_the_evaluation_worker_ends_with_its_service(stack: Stack, ending: str) -> None:
    engine = ServiceProcess("sla-engine", stack, name=f"worker-sla-engine-{ending}").start()
    assert engine.process is not None
    try:
        helpers = children_of(engine.process.pid)
        assert helpers, "the service started no worker process"
    finally:
        if ending == "SIGTERM":
            engine.stop()
        else:
            engine.kill()
            engine.process.wait()
    outages.wait_for(
        lambda: not any(running(pid) for pid in helpers),
        GIVE_UP_SECONDS,
        f"processes of the {ending}ed service still running: {[pid for pid in helpers if running(pid)]}",
        interval=0.2,
    )
