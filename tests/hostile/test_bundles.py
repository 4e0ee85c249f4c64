"""Hostile configuration: YAML bombs, deep nesting, huge values and durations, text PostgreSQL cannot hold.

Each answers 422 (or 413 for size) quickly with a short reason and changes nothing; a good bundle applied
afterwards is the tenant's next version and starts clocks."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import TenantClient
from tests.hostile.conftest import Tally, assert_refused
from tests.support.events import RESPONSE_BUNDLE, ticket_event

pytestmark = pytest.mark.e2e
YAML = {"Content-Type": "application/yaml"}
JSON = {"Content-Type": "application/json"}


def billion_laughs(levels: int = 9) -> str:
    """The classic: each level names the one before nine times; about 300 bytes expand to 9**levels strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def policy_with_target(target: str) -> str:
    return RESPONSE_BUNDLE.replace("targets: {P1: 15m, P2: 1h}", f"targets: {{P1: 15m, P2: {target}}}")


HOSTILE_BUNDLES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("billion laughs (278 bytes)", billion_laughs().encode(), YAML, 422, "aliases"),
    ("billion laughs, larger", billion_laughs(12).encode(), YAML, 422, "aliases"),
    ("alias inside policies", (b"calendars: []\nx: &p {id: a}\npolicies: [*p, *p]\n"), YAML, 422, "aliases"),
    ("deep flow nesting", b"policies: " + b"[" * 50_000 + b"]" * 50_000, YAML, 422, "nested deeper"),
    ("deep block nesting", "".join(f"{'  ' * n}k{n}:\n" for n in range(200)).encode(), YAML, 422, "nested deeper"),
    ("deep JSON nesting", b'{"policies": ' + b"[" * 600_000 + b"]" * 600_000 + b"}", JSON, 413, "body exceeds"),
    ("deep JSON nesting under 1 MiB", b'{"policies": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", JSON, 422, "nested"),
    ("many entries", b"policies: [" + b"{}," * 210_000 + b"]", YAML, 422, "values"),
    ("oversized", b"# " + b"x" * (1024 * 1024 + 10), YAML, 413, "body exceeds"),
    ("duration overflow", policy_with_target("99999999999999999999d").encode(), YAML, 422, "longer than"),
    ("duration of 11 years", policy_with_target("4015d").encode(), YAML, 422, "longer than"),
    ("duration with 5000 digits", policy_with_target("9" * 5000 + "s").encode(), YAML, 422, "not a duration"),
    ("huge key echoed", json.dumps({"x" * 200_000: 1}).encode(), JSON, 422, "unknown key"),
    (
        "NUL in a JSON string",
        json.dumps({"calendars": [{"name": "a\x00b", "timezone": "UTC"}]}).encode(),
        JSON,
        422,
        "U+0000",
    ),
    ("YAML \\0 escape", b'calendars:\n  - {name: "a\\0b", timezone: UTC}\n', YAML, 422, "U+0000"),
    ("lone surrogate in JSON", b'{"calendars": [{"name": "\\ud800", "timezone": "UTC"}]}', JSON, 422, "surrogate"),
    ("not UTF-8", b"policies: [\xff\xfe]", YAML, 400, "UTF-8"),
]


@pytest.mark.parametrize("case", HOSTILE_BUNDLES, ids=[case[0] for case in HOSTILE_BUNDLES])
def test_a_hostile_bundle_is_refused_with_a_short_reason(
    tenant: TenantClient, tally: Tally, case: tuple[str, bytes, dict[str, str], int, str]
) -> None:
    _, body, headers, status, fragment = case
    # A long timeout: a 1 MiB bundle is pure-Python YAML, seconds of CPU on a busy machine (off the event loop).
    with httpx.Client(base_url=tenant.platform.sla_engine.url, headers=tenant.headers, timeout=120) as engine:
        response = tally.sent("bundles: config:apply", engine.post("/v1/config:apply", content=body, headers=headers))
        assert_refused(response, status, fragment)
        assert len(response.content) < 64 * 1024  # nothing huge echoed back
        openslo = tally.sent(
            "bundles: import-openslo", engine.post("/v1/config:import-openslo", content=body, headers=headers)
        )
        assert openslo.status_code in (400, 413, 422), openslo.text[:300]
        assert len(openslo.content) < 64 * 1024
        assert engine.get("/v1/config").status_code == 404  # nothing was applied


def test_after_hostile_bundles_a_good_one_applies_and_counts(tenant: TenantClient, tally: Tally) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    with tenant.client(tenant.platform.sla_engine) as engine:
        for _, body, headers, _, _ in HOSTILE_BUNDLES[:3]:
            assert (
                tally.sent(
                    "bundles: config:apply", engine.post("/v1/config:apply", content=body, headers=headers)
                ).status_code
                == 422
            )
        simulated = tally.sent(
            "bundles: simulate",
            engine.post(
                "/v1/simulate",
                json={"bundle": billion_laughs(), "start": start.isoformat(), "end": datetime.now(UTC).isoformat()},
            ),
        )
        assert_refused(simulated, 422, "aliases")
        applied = engine.post("/v1/config:apply", content=RESPONSE_BUNDLE, headers=YAML)
        assert applied.status_code == 200, applied.text
        assert applied.json()["version"] == 1
    with tenant.client(tenant.platform.intake) as intake:
        assert intake.post("/v1/events", json=ticket_event(tenant.tenant, "B-1", start)).status_code == 202
    with tenant.client(tenant.platform.sla_engine) as engine:
        for _ in range(120):
            clocks = engine.get("/v1/tickets/B-1/clocks")
            if clocks.status_code == 200 and clocks.json()["clocks"]:
                break
            time.sleep(0.5)
        assert [clock["metric"] for clock in clocks.json()["clocks"]] == ["response"]
