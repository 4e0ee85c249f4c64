"""Native webhooks whose payload an adapter cannot map: each is a 400 rejection with a reason, never a 500,
and the good webhooks sent beside them become tickets downstream."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TenantClient
from tests.hostile.conftest import Tally, assert_refused, tickets_known_downstream

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


def fixture(system: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / system / f"{name}.json").read_text())
    return loaded


def jira(issue_id: str, key: str, **issue: Any) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("jira", "issue_created"))
    payload["issue"].update({"id": issue_id, "key": key, **issue})
    return payload


def without_times(payload: dict[str, Any], timestamp: Any) -> dict[str, Any]:
    """A Jira payload whose `timestamp` is unreadable and with no `updated`/`created` to fall back on."""
    payload = {**payload, "timestamp": timestamp}
    fields = payload["issue"]["fields"]
    payload["issue"]["fields"] = {k: v for k, v in fields.items() if k not in ("updated", "created")}
    return payload


def servicenow(sys_id: str, number: str, updated_on: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("servicenow", "incident_inserted"))
    record = payload["record"]
    record["sys_id"] = {"value": sys_id, "display_value": sys_id}
    record["number"] = {"value": number, "display_value": number}
    record["sys_updated_on"] = {"value": updated_on, "display_value": updated_on}
    return payload


def zendesk(event_id: str, ticket: str, time: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("zendesk", "ticket_created"))
    payload.update({"id": event_id, "time": time})
    payload["detail"]["id"] = ticket
    return payload


HOSTILE: list[tuple[str, Any, str]] = [
    ("jira", jira("90001", "BAD-1", self="http://[not-a-url"), ""),  # no site: mapped as jira://unknown
    ("jira", without_times(jira("90002", "BAD-2"), -1), "timestamp"),
    ("jira", without_times(jira("90003", "BAD-3"), 10**30), "timestamp"),
    ("jira", jira("90004", "BAD-4\x00"), "U+0000"),
    ("servicenow", servicenow("bad5", "BAD-5", "2026-13-45 99:99:99"), "sys_updated_on"),
    ("servicenow", servicenow("bad6", "BAD-6", "0001-01-01T00:00:00+01:00"), "time"),
    ("servicenow", servicenow("bad7", "BAD-7", "9999-12-31T23:59:59-05:00"), "time"),
    ("zendesk", zendesk("bad8", "BAD-8", "0001-01-01T00:30:00+01:00"), "time"),
    ("zendesk", zendesk("bad9", "BAD-9", "1900-01-01T00:00:00Z"), "time"),
    ("zendesk", zendesk("bad10", "𝄞" * 200, "2026-05-06T03:00:00Z"), "bytes"),
    ("zendesk", [1, 2, 3], "body"),
    ("jira", "not an object", "body"),
]


def test_unmappable_webhooks_are_rejected_and_good_ones_beside_them_count(tenant: TenantClient, tally: Tally) -> None:
    good = [
        ("jira", jira("80001", "JGOOD-1"), "JGOOD-1"),
        ("servicenow", servicenow("good2", "SGOOD-2", "2026-05-06 03:00:00"), "SGOOD-2"),
        ("zendesk", zendesk("good3", "ZGOOD-3", "2026-05-06T03:00:00Z"), "ZGOOD-3"),
    ]
    with tenant.client(tenant.platform.intake) as intake:
        for system, payload, fragment in HOSTILE:
            response = tally.sent(
                f"webhooks: unmappable {system}",
                intake.post(
                    f"/v1/webhooks/{system}", content=json.dumps(payload), headers={"Content-Type": "application/json"}
                ),
            )
            if system == "jira" and fragment == "":  # a bad self link names no site; the rest maps
                assert response.status_code == 202, response.text
                continue
            assert_refused(response, 400, '"rejected"', fragment)
        for system, payload, _ in good:
            response = intake.post(f"/v1/webhooks/{system}", json=payload)
            assert response.status_code == 202, response.text
    tickets = [ticket for _, _, ticket in good] + ["BAD-1"]
    assert tickets_known_downstream(tenant, tickets) == set(tickets)


def test_webhook_bodies_over_the_limit_or_not_json_are_refused(tenant: TenantClient, tally: Tally) -> None:
    with tenant.client(tenant.platform.intake) as intake:
        too_large = tally.sent(
            "webhooks: size/encoding",
            intake.post(
                "/v1/webhooks/jira",
                content=b"{" + b" " * (6 * 1024 * 1024) + b"}",
                headers={"Content-Type": "application/json"},
            ),
        )
        assert_refused(too_large, 413, "body exceeds")
        latin1 = tally.sent(
            "webhooks: size/encoding",
            intake.post(
                "/v1/webhooks/zendesk",
                content='{"type": "caf\u00e9"}'.encode("latin-1"),
                headers={"Content-Type": "application/json"},
            ),
        )
        assert_refused(latin1, 400, "not UTF-8")
        surrogate = tally.sent(
            "webhooks: size/encoding",
            intake.post(
                "/v1/webhooks/servicenow",
                content=b'{"record": {"number": "\\ud800"}}',
                headers={"Content-Type": "application/json"},
            ),
        )
        assert_refused(surrogate, 400, "surrogate")
