"""Where each service's start-up time goes: a cold start, and a restart after SIGKILL next to a second instance.

Run after `make up migrate`, with `.stackports` sourced: `uv run python -m bench.recovery.startup`. Options:
`--static` gives each instance a static group membership (`KAFKA__GROUP_INSTANCE_ID`), `--no-bytecode` makes
every process compile its modules from source (an empty `PYTHONPYCACHEPREFIX`: how a checkout whose
virtualenv was installed without `--compile-bytecode` started when `PYTHONDONTWRITEBYTECODE` is set),
`--services intake,reporting` picks services, `--rounds N` repeats each scenario (the table shows each run).

`ready` is timed from the launch to the first `/readyz` 200; the phases are the service's own (its
"<service> started in ..." log line, `slm_shared.runtime.StartupClock`), so they add up to a bit less.
CPU is the process's user+system seconds until ready: the part of start-up a busy machine stretches.
`+joined` is how long after it began serving its consumers had all joined their groups (they join in the
background: a member joining waits for the others to rejoin and, after a SIGKILL, for the dead member's
session to end).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

from scripts.localstack import discover
from scripts.processes import ServiceProcess

TIMEOUT = 120.0
SERVICES = ("intake", "sla-engine", "reporting")
PHASE = re.compile(r"([a-z][a-z ]+?) (\d+\.\d+) s")
JOINED = re.compile(r"every consumer group joined, (\d+\.\d+) s after")


def option(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def cpu_seconds(process: ServiceProcess) -> float:
    assert process.process is not None
    fields = Path(f"/proc/{process.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def launch_and_time(process: ServiceProcess) -> tuple[float, float, float, dict[str, float]]:
    """(seconds to ready, CPU seconds until then, seconds from serving to every consumer group joined, the
    service's own phases)."""
    offset = process.log_path.stat().st_size if process.log_path.exists() else 0
    began = time.monotonic()
    process.launch()
    process.wait_ready(TIMEOUT, poll=0.05)  # fine-grained: the figure is the time to ready
    ready = time.monotonic() - began
    cpu = cpu_seconds(process)
    joined = float("nan")
    while time.monotonic() - began < TIMEOUT:  # the consumers join their groups once the service serves
        if (found := JOINED.search(log_since(process, offset))) is not None:
            joined = float(found.group(1))
            break
        time.sleep(0.1)
    summary = next(
        (
            line
            for line in log_since(process, offset).splitlines()
            if f'"message": "{process.service} started in' in line
        ),
        "",
    )
    phases = {name: float(seconds) for name, seconds in PHASE.findall(summary.split(" started in", 1)[-1])}
    return ready, cpu, joined, phases


def log_since(process: ServiceProcess, offset: int) -> str:
    with process.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def row(label: str, ready: float, cpu: float, joined: float, phases: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in phases.items() if seconds >= 0.05)
    return f"{label:<34} {ready:>6.1f} {cpu:>6.1f} {joined:>7.1f}  {parts}"


def main() -> None:
    stack = discover()
    assert stack is not None, "run `make up` and source .stackports first"
    static = "--static" in sys.argv
    rounds = int(option("--rounds", "1"))
    services = option("--services", ",".join(SERVICES)).split(",")
    cache = tempfile.mkdtemp(prefix="slm-no-bytecode-") if "--no-bytecode" in sys.argv else None
    if cache is not None:
        os.environ["PYTHONPYCACHEPREFIX"] = cache  # inherited by the services: no compiled module is found
    print(
        f"load average {os.getloadavg()[0]:.1f}; membership {'static' if static else 'dynamic'}; "
        f"bytecode {'none (compiled at every start)' if cache else 'as installed'}"
    )
    print(f"{'scenario':<34} {'ready':>6} {'CPU s':>6} {'+joined':>7}  phases of at least 0.05 s")
    for service in services:
        settings = {"period_close_enabled": "false"} if service == "reporting" else {}

        def instance(n: int, service: str = service, settings: dict[str, str] = settings) -> ServiceProcess:
            name = f"startup-{service}-{n}"
            membership = {"kafka__group_instance_id": name} if static else {}
            return ServiceProcess(service, stack, name=name, **settings, **membership)

        first, second = instance(0), instance(1)
        try:
            for attempt in range(rounds):
                print(row(f"{service} cold start", *launch_and_time(first)), flush=True)
                print(row(f"{service} second instance joins", *launch_and_time(second)), flush=True)
                first.kill()
                print(row(f"{service} SIGKILLed, started again", *launch_and_time(first)), flush=True)
                first.stop()
                second.stop()
                if attempt + 1 < rounds:
                    time.sleep(12)  # the stopped members' sessions end: the next cold start is cold again
        finally:
            first.kill()
            second.kill()


if __name__ == "__main__":
    main()
