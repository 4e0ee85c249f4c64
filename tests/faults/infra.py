"""The broker and PostgreSQL of the local stack (deploy/local/stack.sh), killed and brought back.

Broker faults are process faults (SIGKILL, SIGSTOP): a single-node broker advertises its own address, so a TCP
proxy in front of it would only see the bootstrap connection. Network faults go through the PostgreSQL proxy.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
from pathlib import Path

from scripts.localstack import REPO

STACK_DIR = REPO / ".stack"


class LocalInfra:
    def broker_pid(self) -> int:
        return int((STACK_DIR / "kafka" / "kafka.pid").read_text().strip())

    def kill_broker(self) -> None:
        os.kill(self.broker_pid(), signal.SIGKILL)

    def postgres_is_private(self) -> bool:
        return (STACK_DIR / "pg" / "state").read_text().split()[0] == "private"

    def stop_postgres_immediately(self) -> None:
        """`pg_ctl stop -m immediate`: no checkpoint, every backend killed; crash recovery at the next start."""
        home = Path((STACK_DIR / "pg" / "state").read_text().split()[2])
        pg_ctl = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))[-1]
        command = [pg_ctl, "-D", str(home / "data"), "-m", "immediate", "-w", "stop"]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60, cwd="/")

    def bring_back(self) -> None:
        """`stack.sh up`: starts whatever is down and returns once the broker answers metadata requests."""
        subprocess.run(
            ["bash", str(REPO / "deploy" / "local" / "stack.sh"), "up"], check=True, capture_output=True, timeout=180
        )
