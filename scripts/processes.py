"""The three services as real processes, the way they run in production (demo and end-to-end tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from scripts.localstack import REPO, Stack

LOGS = REPO / ".stack" / "test-logs"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServiceProcess:
    def __init__(self, service: str, stack: Stack, *, name: str | None = None, **settings: str) -> None:
        self.service = service
        self.name = name or service
        self.port = free_port()
        self.env = {
            **os.environ,
            **stack.service_env(service, http_port=str(self.port), http_host="127.0.0.1", **settings),
        }
        self.process: subprocess.Popen[bytes] | None = None
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path: Path = LOGS / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 60.0) -> ServiceProcess:
        self.launch()
        self.wait_ready(ready_timeout)
        return self

    def launch(self) -> None:
        """Start the process without waiting for it to be ready (a supervisor's restart)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(REPO / ".venv" / "bin" / f"slm-{self.service}"), "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float, poll: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(poll)
        raise TimeoutError(f"{self.name} not ready after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM, as Kubernetes sends it; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def stop_gracefully(self) -> bool:
        """SIGTERM, then: did the service drain and close everything before exiting?

        uvicorn re-raises the signal after its shutdown, so the exit status is the signal's (143), as
        Kubernetes expects; the service's own last log line tells that the lifespan shutdown completed.
        """
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        code = self.stop()
        with self.log_path.open("rb") as log:
            log.seek(offset)
            tail = log.read().decode(errors="replace")
        return code in (0, -signal.SIGTERM) and f'"message": "{self.service} stopped"' in tail

    def kill(self) -> None:
        """SIGKILL: a crash with no chance to drain or commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def create_api_key(stack: Stack, tenant: str, timeout: float = 60.0, scopes: str | None = None) -> str:
    """The operator's one command: `slm-intake keys create --tenant <tenant> [--scopes ingest,read]`."""
    completed = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "slm-intake"),
            "keys",
            "create",
            "--tenant",
            tenant,
            *(["--scopes", scopes] if scopes else []),
        ],
        env={**os.environ, **stack.service_env("intake")},
        capture_output=True,
        check=True,
        timeout=timeout,
    )
    return completed.stdout.decode().strip().splitlines()[-1]


def wait_until_key_works(urls: list[str], key: str, probe_path: str = "/v1/config", timeout: float = 30.0) -> None:
    """Keys reach the other services as events; wait until each one accepts it.

    Each 401 meanwhile counts as a failed authentication from this address: past the service's burst it answers
    429 (with `Retry-After`) until enough failures are forgiven, so a 429 is waited out, not taken as success; a
    request that times out or finds no listener is tried again too."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        pause = 0.5
        still = []
        for url in pending:
            try:
                answer = httpx.get(f"{url}{probe_path}", headers={"Authorization": f"Bearer {key}"}, timeout=10)
            except httpx.TransportError:  # a service busy with a backlog, or restarting: not yet
                still.append(url)
                continue
            if answer.status_code == 429:
                pause = max(pause, min(float(answer.headers.get("retry-after") or 1), 10.0))
            if answer.status_code in (401, 429):
                still.append(url)
        pending = still
        if pending:
            time.sleep(pause)
    if pending:
        raise TimeoutError(f"API key not accepted by {pending} after {timeout}s")


@dataclass
class LocalPlatform:
    """The three services running on the local stack, started together and stopped together."""

    stack: Stack
    intake: ServiceProcess
    sla_engine: ServiceProcess
    reporting: ServiceProcess

    @classmethod
    def start(cls, stack: Stack, prefix: str = "", **settings: dict[str, str]) -> LocalPlatform:
        """`settings` per service, e.g. `reporting={"period_close_enabled": "false"}`."""
        processes = [
            ServiceProcess(s, stack, name=f"{prefix}{s}", **settings.get(s.replace("-", "_"), {}))
            for s in ("intake", "sla-engine", "reporting")
        ]
        try:
            for process in processes:
                process.start()
        except Exception:
            for process in processes:
                process.stop()
            raise
        return cls(stack, *processes)

    @property
    def processes(self) -> list[ServiceProcess]:
        return [self.intake, self.sla_engine, self.reporting]

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def new_tenant(self, tenant: str, scopes: str | None = None) -> str:
        """A key for a new (or existing) tenant, once every service knows it (a key lacking a route's scope
        gets 403 there, which counts as known)."""
        key = create_api_key(self.stack, tenant, scopes=scopes)
        wait_until_key_works([self.sla_engine.url], key, "/v1/config")
        wait_until_key_works([self.reporting.url], key, "/v1/reports/slr")
        return key
