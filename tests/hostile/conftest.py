"""The hostile suite: each class of bad input sent through the three services as real processes (HTTP).

Every test records what it sent in the session's `Tally`; the terminal summary prints, per class, how many
hostile inputs went in and which answers came back, and writes the same to .stack/test-logs/hostile-tally.json.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest

from scripts.localstack import Stack
from scripts.processes import LOGS, LocalPlatform
from tests.e2e.conftest import TenantClient

KAFKA_RECORD = 0  # the `status` of a hostile Kafka record in the tally


class Tally:
    """Hostile inputs sent, by class, and the status codes they got."""

    def __init__(self) -> None:
        self.answers: dict[str, Counter[int]] = defaultdict(Counter)

    def sent(self, kind: str, response: httpx.Response) -> httpx.Response:
        self.answers[kind][response.status_code] += 1
        return response

    def records(self, kind: str, count: int) -> None:
        """Kafka records produced (no HTTP answer): shown as `record×N`."""
        self.answers[kind][KAFKA_RECORD] += count

    def lines(self) -> list[str]:
        rows = []
        for kind in sorted(self.answers):
            counts = self.answers[kind]
            answers = ", ".join(
                f"{'record' if code == KAFKA_RECORD else code}×{count}" for code, count in sorted(counts.items())
            )
            rows.append(f"{kind:<34} {sum(counts.values()):>6} sent  {answers}")
        return rows


TALLY = Tally()


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.answers:
        return
    terminalreporter.section("hostile inputs per class")
    for line in TALLY.lines():
        terminalreporter.write_line(line)
    total = sum(sum(counts.values()) for counts in TALLY.answers.values())
    terminalreporter.write_line(f"{'total':<34} {total:>6} sent")
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "hostile-tally.json").write_text(
        json.dumps(
            {kind: {str(code): n for code, n in counts.items()} for kind, counts in TALLY.answers.items()}, indent=2
        )
    )


@pytest.fixture(scope="package")
def platform(stack: Stack) -> Iterator[LocalPlatform]:
    """One platform for the package; no rate limit (the fuzz sends fast) and no period-close loop.

    The suites fail authentication on purpose, hundreds of times from this one address: the failed-authentication
    throttle would answer 429 to the good requests after them (it has its own tests)."""
    unthrottled = {"auth_failure_burst": "1000000"}
    started = LocalPlatform.start(
        stack,
        prefix="hostile-",
        intake={"rate_limit_per_second": "0", **unthrottled},
        sla_engine=unthrottled,
        reporting={"period_close_enabled": "false", **unthrottled},
    )
    yield started
    started.stop()


@pytest.fixture
def tenant(platform: LocalPlatform) -> TenantClient:
    name = f"h-{uuid.uuid4().hex[:10]}"
    return TenantClient(name, platform.new_tenant(name), platform)


def assert_refused(response: httpx.Response, status: int, *fragments: str) -> None:
    """A clear 4xx: the expected status and a reason that names what was wrong."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    text = response.text
    for fragment in fragments:
        assert fragment in text, (fragment, text[:500])


def tickets_known_downstream(tenant: TenantClient, ticket_ids: Iterable[str], timeout: float = 60.0) -> set[str]:
    """The tickets the sla-engine has a timeline for (its clocks answer 200, not 404), once all arrived or
    the timeout passed: the downstream effect of accepted ticket events."""
    wanted = set(ticket_ids)
    known: set[str] = set()
    deadline = time.monotonic() + timeout
    with tenant.client(tenant.platform.sla_engine) as engine:
        while known != wanted and time.monotonic() < deadline:
            for ticket in sorted(wanted - known):
                if engine.get(f"/v1/tickets/{ticket}/clocks").status_code == 200:
                    known.add(ticket)
            if known != wanted:
                time.sleep(0.5)
    return known
