"""Property: whatever body reaches any route that takes one, on any of the three services, the answer is
never a 5xx and the service keeps answering. Bodies: arbitrary bytes, arbitrary JSON, and JSON shaped like
each route's own body with values replaced, under assorted content types."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripts.processes import LocalPlatform
from tests.e2e.conftest import TenantClient
from tests.hostile.conftest import Tally

pytestmark = pytest.mark.e2e

# Every route that reads a body, by service; checked against each service's OpenAPI document below.
BODY_ROUTES: dict[str, list[tuple[str, str]]] = {
    "intake": [
        ("POST", "/v1/events"),
        ("POST", "/v1/webhooks/jira"),
        ("POST", "/v1/webhooks/servicenow"),
        ("POST", "/v1/webhooks/zendesk"),
        ("PUT", "/v1/mappings/jira"),
        ("POST", "/v1/replay"),
        ("POST", "/v1/webhooks/jira/{tenant}"),
        ("POST", "/v1/webhooks/servicenow/{tenant}"),
        ("POST", "/v1/webhooks/zendesk/{tenant}"),
        ("POST", "/v1/webhook-secrets/jira"),
    ],
    "sla_engine": [
        ("POST", "/v1/config:apply"),
        ("POST", "/v1/config:import-openslo"),
        ("POST", "/v1/recalculate"),
        ("POST", "/v1/simulate"),
    ],
    "reporting": [
        ("PUT", "/v1/reporting-config"),
        ("POST", "/v1/periods:close"),
        ("POST", "/v1/dashboard/login"),
        ("POST", "/v1/dashboard/logout"),
        ("POST", "/v1/improvements"),
        ("PATCH", "/v1/improvements/{improvement_id}"),
        ("POST", "/v1/reviews/{period}:approve"),
        ("PATCH", "/v1/complaints/{ticket_id}"),
        ("PUT", "/v1/notification-policies"),
        ("POST", "/v1/notifications/{notification_id}:ack"),
        ("POST", "/v1/notification-acks/{token}"),
    ],
}
SHAPES: dict[str, dict[str, Any]] = {
    "/v1/events": {
        "specversion": "1.0",
        "id": "x",
        "source": "s",
        "type": "itsm.ticket.v1",
        "time": "2026-11-20T10:00:00Z",
        "data": {"ticket_id": "T", "action": "created"},
    },
    "/v1/mappings/jira": {"statuses": {"open": "open"}, "priorities": {"high": "P2"}, "default_kind": "incident"},
    "/v1/replay": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "types": ["itsm.ticket.v1"]},
    "/v1/recalculate": {"mode": "ongoing"},
    "/v1/simulate": {
        "bundle": "policies: []",
        "format": "yaml",
        "start": "2026-11-01T00:00:00Z",
        "end": "2026-11-02T00:00:00Z",
    },
    "/v1/reporting-config": {
        "timezone": "UTC",
        "period": "monthly",
        "publish_scopes": [{"service": "a"}],
        "dashboard_horizon_seconds": 3600,
        "metric_targets_percent": {"response": 90},
    },
    "/v1/periods:close": {"at": "2026-11-01T00:00:00Z"},
    "/v1/improvements": {
        "title": "t",
        "trigger": {"kind": "complaint", "ref": "T-1"},
        "kpi": {"kpi": "reopen_rate"},
        "target_value": 5,
        "baseline_period": {"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
    },
    "/v1/improvements/IMP-NONE": {"status": "done", "note": "n"},
    "/v1/reviews/2026-10:approve": {"approved_by": "a", "comment": "c"},
    "/v1/complaints/T-1": {"status": "resolved", "marked": True, "owner": "o"},
    "/v1/notification-policies": {
        "channels": [{"name": "c", "type": "slack", "url": "http://127.0.0.1:9/x"}],
        "rules": [
            {"id": "r", "triggers": ["breached"], "channel": "c", "calendar": {"hours": {"mon-fri": ["09:00-18:00"]}}}
        ],
    },
}
# Concrete values for the path parameters of the fuzzed routes.
PATH_VALUES = {"{improvement_id}": "IMP-NONE", "{period}": "2026-10", "{ticket_id}": "T-1"}
CONTENT_TYPES = [
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/yaml",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=24)
    | st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-05:00",
            "\x00",
            "\ud800",
            "𝄞" * 300,
            "2026-13-45 99:99:99",
            "99999999999999999999d",
            "*a",
            "&a x",
            "NaN",
            "1e999",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=16,
)


@st.composite
def shaped(draw: st.DrawFn, path: str) -> Any:
    """The route's own body with some fields replaced, dropped or added."""
    body = dict(SHAPES.get(path, {}))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace" and body:
            body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
        elif action == "drop" and body:
            body.pop(draw(st.sampled_from(sorted(body))))
        else:
            body[draw(st.text(max_size=10))] = draw(json_values)
    return body


def encoded(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def bodies(path: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=512),
        json_values.map(encoded),
        shaped(path).map(encoded),
        st.lists(shaped("/v1/events").map(encoded), max_size=5).map(lambda items: b"[" + b",".join(items) + b"]"),
    )


def test_the_fuzzed_routes_are_every_route_that_takes_a_body(platform: LocalPlatform) -> None:
    for name, service in (
        ("intake", platform.intake),
        ("sla_engine", platform.sla_engine),
        ("reporting", platform.reporting),
    ):
        document = httpx.get(f"{service.url}/openapi.json").json()
        documented = {
            (method.upper(), path.replace("{system}", "jira"))
            for path, item in document["paths"].items()
            for method in item
            if method in ("post", "put", "patch")
        }
        assert documented <= set(BODY_ROUTES[name]), documented - set(BODY_ROUTES[name])


@pytest.mark.parametrize(
    ("service_name", "method", "path"),
    [(name, method, path) for name, routes in BODY_ROUTES.items() for method, path in routes],
)
def test_no_body_makes_a_route_fail(
    tenant: TenantClient, tally: Tally, service_name: str, method: str, path: str
) -> None:
    service = getattr(tenant.platform, service_name)
    path = path.replace("{tenant}", tenant.tenant)
    for name, value in PATH_VALUES.items():
        path = path.replace(name, value)

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(body=bodies(path), content_type=st.sampled_from(CONTENT_TYPES), keyed=st.booleans())
    def property_holds(body: bytes, content_type: str, keyed: bool) -> None:
        headers = {"Content-Type": content_type, **(tenant.headers if keyed else {})}
        response = tally.sent(
            f"fuzz: {method} {path}",
            httpx.request(method, f"{service.url}{path}", content=body, headers=headers, timeout=60),
        )
        assert response.status_code < 500, (response.status_code, response.text[:300], body[:200])

    property_holds()
    assert httpx.get(f"{service.url}/healthz").status_code == 200
