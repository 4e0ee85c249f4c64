"""deploy/compose.yaml, the laptop path, agrees with the Dockerfiles, the settings and the Kubernetes manifests."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import yaml

from tests.deploy.support import DEPLOY, REPO, SERVICES, env_names, render


@cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def environment(service: str) -> dict[str, str]:
    return {name: str(value) for name, value in compose()["services"][service]["environment"].items()}


def test_compose_runs_kafka_in_kraft_mode_postgres_and_the_three_services() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "postgres", *SERVICES, *(f"{s}-migrate" for s in SERVICES)}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"].startswith("postgres:")
    init = (DEPLOY / "docker" / "postgres-init.sql").read_text()
    for service in SERVICES:  # every service's own database is created
        database = environment(service)[f"{service.replace('-', '_').upper()}_DATABASE_URL"].rsplit("/", 1)[1]
        assert f"CREATE DATABASE {database} OWNER {database}_owner;" in init


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_built_from_the_dockerfile_and_migrated_before_it_starts(service: str) -> None:
    services = compose()["services"]
    for name in (service, f"{service}-migrate"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"  # relative to the context
        assert build["args"] == {"SERVICE": service}
    migrate = services[f"{service}-migrate"]
    assert migrate["entrypoint"] == ["alembic", "-c", f"services/{service}/alembic.ini", "upgrade", "head"]
    assert services[service]["depends_on"][f"{service}-migrate"] == {"condition": "service_completed_successfully"}
    assert services[service]["read_only"] is True


@pytest.mark.parametrize("service", SERVICES)
def test_compose_sets_only_real_settings_and_every_required_one(service: str) -> None:
    known = env_names(SERVICES[service])
    for name in (service, f"{service}-migrate"):
        env = environment(name)
        assert set(env) <= set(known), sorted(set(env) - set(known))
        assert {field for field, required in known.items() if required} <= set(env)


@pytest.mark.parametrize("service", SERVICES)
def test_compose_publishes_the_port_the_service_listens_on_as_kubernetes_does(service: str) -> None:
    prefix = service.replace("-", "_").upper()
    listens = int(environment(service)[f"{prefix}_HTTP_PORT"])
    [mapping] = compose()["services"][service]["ports"]
    assert int(mapping.rsplit(":", 1)[1]) == listens
    [deployment] = [d for d in render("dev") if d["kind"] == "Deployment" and d["metadata"]["name"] == service]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == listens


def test_compose_and_kubernetes_set_the_same_settings_apart_from_the_platform_specific_ones() -> None:
    # Kubernetes has the topic operator (CREATE_TOPICS=false) and a consumer group pinned per service; compose
    # lets the services create their topics and pins the partitions for a one-broker cluster. Secrets (and the
    # announcement public key, shared by two services) come from Secrets and a ConfigMap of their own there.
    platform_specific = {
        "CREATE_TOPICS",
        "KAFKA__GROUP_ID",
        "KAFKA__SECURITY_PROTOCOL",
        "KAFKA__TOPIC_PARTITIONS",
        "PUBLIC_BASE_URL",
        "DATABASE_URL",
        "KEY_SIGNING_KEY",
        "WEBHOOK_SECRET_KEYS",
        "NOTIFICATION_SECRET_KEYS",
        "KEY_ANNOUNCEMENT_PUBLIC_KEYS",
        "FORWARDED_ALLOW_IPS",
    }
    config_maps = {d["metadata"]["name"]: d["data"] for d in render("dev") if d["kind"] == "ConfigMap"}
    for service in SERVICES:
        prefix = service.replace("-", "_").upper() + "_"
        in_compose = {name.removeprefix(prefix) for name in environment(service)} - platform_specific
        in_kubernetes = {name.removeprefix(prefix) for name in config_maps[f"{service}-config"]} - platform_specific
        assert in_compose == in_kubernetes


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_runs_as_a_role_that_cannot_change_the_schema_and_its_migrations_as_the_owner(service: str) -> None:
    database = service.replace("-", "_")
    variable = f"{database.upper()}_DATABASE_URL"
    app_url = environment(service)[variable]
    owner_url = compose()["services"][f"{service}-migrate"]["environment"][variable]
    assert app_url.split("://", 1)[1].startswith(f"{database}_app:")
    assert owner_url.split("://", 1)[1].startswith(f"{database}_owner:")
    init = (DEPLOY / "docker" / "postgres-init.sql").read_text()
    statements = " ".join(init.split())  # one line per statement, whatever the wrapping
    # The app role gets rows of what the owner creates, and no CREATE on the schema (PUBLIC loses it too).
    assert (
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {database}_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, "
        f"DELETE ON TABLES TO {database}_app;"
    ) in statements
    assert f"GRANT USAGE ON SCHEMA public TO {database}_app;" in statements
    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC;" in statements
    granted_to_app = [line for line in init.splitlines() if f"TO {database}_app" in line and "GRANT" in line]
    assert not [line for line in granted_to_app if "CREATE ON SCHEMA" in line or "ALL" in line]
