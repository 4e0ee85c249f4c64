"""Every route of every service names the API key scope it needs (docs/security.md, scoped API keys), apart
from the few that take no key at all. Built, not served: constructing an app connects nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

# No key: operations, the API documents, the signed webhooks (their signature instead), the report schema,
# the dashboard's pages, which check the `read` scope themselves (cookie or header, reporting/api.py), and the
# signed acknowledgement links of notifications (the link is the credential, reporting/notifications/ack_links.py).
UNSCOPED = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/asyncapi.json",
    "/v1/reports/slr/schema",
    "/v1/webhooks/jira/{tenant}",
    "/v1/webhooks/servicenow/{tenant}",
    "/v1/webhooks/zendesk/{tenant}",
    "/v1/dashboard",
    "/v1/dashboard/data",
    "/v1/dashboard/login",
    "/v1/dashboard/logout",
    "/v1/notification-acks/{token}",
}
DATABASE = "postgresql+asyncpg://nobody@127.0.0.1:1/none"


def apps() -> dict[str, Callable[[], FastAPI]]:
    from intake.app import create_app as intake_app
    from intake.settings import IntakeSettings
    from reporting.app import create_app as reporting_app
    from reporting.settings import ReportingSettings
    from sla_engine.app import create_app as engine_app
    from sla_engine.settings import SlaEngineSettings

    return {
        "intake": lambda: intake_app(IntakeSettings(database_url=DATABASE)),
        "sla-engine": lambda: engine_app(SlaEngineSettings(database_url=DATABASE)),
        "reporting": lambda: reporting_app(ReportingSettings(database_url=DATABASE)),
    }


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """The app's routes, through the routers FastAPI includes lazily (`original_router`)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from api_routes(router.routes)


def scopes(dependant: Dependant) -> Iterator[str]:
    for dependency in dependant.dependencies:
        scope: Any = getattr(dependency.call, "required_scope", None)
        if scope is not None:
            yield str(scope)
        yield from scopes(dependency)


@pytest.mark.parametrize("service", ["intake", "sla-engine", "reporting"])
def test_every_route_with_a_key_names_exactly_one_scope(service: str) -> None:
    app = apps()[service]()
    checked = 0
    for route in api_routes(app.routes):
        if route.path in UNSCOPED:
            continue
        assert len(set(scopes(route.dependant))) == 1, f"{service} {sorted(route.methods or ())} {route.path}"
        checked += 1
    assert checked >= 5


def test_the_routes_that_change_configuration_need_config_and_reading_needs_read() -> None:
    engine = apps()["sla-engine"]()
    needed = {
        (method, route.path): next(scopes(route.dependant))
        for route in api_routes(engine.routes)
        if route.path not in UNSCOPED
        for method in route.methods or ()
    }
    assert needed[("POST", "/v1/config:apply")] == "config"
    assert needed[("POST", "/v1/recalculate")] == "config"
    assert needed[("GET", "/v1/config")] == "read"
    assert needed[("GET", "/v1/tickets/{ticket_id}/clocks")] == "read"
    assert needed[("GET", "/v1/set-aside")] == "admin"
