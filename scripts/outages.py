"""Real outages of the local stack: PostgreSQL stopped the hard way, the broker JVM killed, both started again.

Used by the recovery tests and the recovery measurement. Only the private stack `make up` started under this
checkout's `.stack/` is touched (its pid file and data directory), never a server of another checkout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from scripts.localstack import REPO

STACK = REPO / ".stack"
STACK_SCRIPT = REPO / "deploy" / "local" / "stack.sh"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _private_postgres() -> tuple[int, Path]:
    state = (STACK / "pg" / "state").read_text().split()
    if state[0] != "private":
        raise RuntimeError("the stack uses an external PostgreSQL; outages need the private cluster (make up)")
    return int(state[1]), Path(state[2]) / "data"


def _pg_ctl(*args: str) -> None:
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    command = [str(binaries[-1]) if binaries else "/usr/bin/pg_ctl", *args]
    if os.geteuid() == 0:  # the cluster belongs to the postgres user (deploy/local/stack.sh)
        command = ["/usr/sbin/runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=90, cwd="/")


def stop_postgres() -> None:
    """`pg_ctl -m immediate`: the server dies as in a crash, every connection is cut."""
    port, data = _private_postgres()
    _pg_ctl("-D", str(data), "-m", "immediate", "-w", "stop")
    wait_for(lambda: not port_open(port), 30, "PostgreSQL still listening")


def start_postgres() -> None:
    """Start the private cluster again; returns once it accepts connections (crash recovery included)."""
    _, data = _private_postgres()
    _pg_ctl("-D", str(data), "-l", str(data.parent / "postgres.log"), "-w", "-t", "60", "start")


def kafka_port() -> int:
    return int(os.environ.get("SLM_KAFKA_PORT", "9092"))


def kill_broker() -> None:
    """SIGKILL the broker JVM of this checkout's stack (found by its pid file)."""
    pid = int((STACK / "kafka" / "kafka.pid").read_text().strip())
    command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    if b"kafka.Kafka" not in command_line or str(STACK).encode() not in command_line:
        raise RuntimeError(f"pid {pid} is not this checkout's broker")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "broker JVM still alive")


def start_broker() -> None:
    """`deploy/local/stack.sh up` with this checkout's ports: starts the broker and waits until it serves."""
    subprocess.run(["/usr/bin/env", "bash", str(STACK_SCRIPT), "up"], check=True, capture_output=True, timeout=180)


def wait_for(condition: Callable[[], bool], timeout: float, failure: str, interval: float = 0.1) -> float:
    """Poll `condition()` until true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{failure} after {timeout}s")
        time.sleep(interval)
    return time.monotonic() - started
