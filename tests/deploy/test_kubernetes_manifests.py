"""The Kustomize overlays render offline, validate against the Kubernetes schemas and match the code."""

from __future__ import annotations

import base64
import re
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from slm_shared.topics import ALL_TOPICS
from tests.deploy.support import OVERLAYS, REPO, SERVICES, env_names, metric_names, render

KUBERNETES_VERSION = "1.33"
# Custom resources kubernetes-validate has no schema for; checked by the dedicated tests below instead.
CUSTOM_KINDS = {"KafkaTopic", "KafkaUser", "ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"}
WORKLOAD_KINDS = ("Deployment", "Job")


def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return render(overlay)


def of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [document for document in rendered(overlay) if document["kind"] == kind]


def named(overlay: str, kind: str, name: str) -> dict[str, Any]:
    [document] = [d for d in of_kind(overlay, kind) if d["metadata"]["name"] == name]
    return document


def service_of(workload: dict[str, Any]) -> str:
    service = workload["metadata"]["labels"]["app.kubernetes.io/name"]
    assert service in SERVICES, f"{workload['kind']} {workload['metadata']['name']} belongs to no known service"
    return str(service)


def container_env(overlay: str, container: dict[str, Any]) -> dict[str, Any]:
    """The environment a container gets: ConfigMaps through envFrom, then its own env entries."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        config_map = named(overlay, "ConfigMap", source["configMapRef"]["name"])
        env.update(config_map.get("data", {}))
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return env


def workloads(overlay: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (workload, container)
        for kind in WORKLOAD_KINDS
        for workload in of_kind(overlay, kind)
        for container in workload["spec"]["template"]["spec"]["containers"]
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_renders_every_piece_for_the_three_services(overlay: str) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered(overlay)}
    for service in SERVICES:
        for kind in ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"):
            expected = f"{service}-config" if kind == "ConfigMap" else service
            assert (kind, expected) in kinds, f"{overlay}: no {kind} {expected}"
        assert ("Job", f"{service}-migrate") in kinds
    assert all(d["metadata"].get("namespace") for d in rendered(overlay))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_core_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    skipped = set()
    for document in rendered(overlay):
        if document["kind"] in CUSTOM_KINDS:
            skipped.add(document["kind"])
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    # Only the custom resources we know of are skipped; a new kind must be added here on purpose.
    assert skipped <= CUSTOM_KINDS


def test_schema_validation_rejects_a_misspelt_field() -> None:
    deployment = dict(named("dev", "Deployment", "intake"))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_environment_variable_a_manifest_sets_is_a_settings_field(overlay: str) -> None:
    for workload, container in workloads(overlay):
        known = env_names(SERVICES[service_of(workload)])
        unknown = set(container_env(overlay, container)) - set(known)
        assert not unknown, f"{overlay} {workload['kind']} {workload['metadata']['name']}: {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_required_settings_field_is_set_for_each_deployment_and_migration(overlay: str) -> None:
    for workload, container in workloads(overlay):
        required = {name for name, is_required in env_names(SERVICES[service_of(workload)]).items() if is_required}
        assert required, "the settings walk found no required field (database_url)"
        env = container_env(overlay, container)
        assert required <= set(env), f"{workload['metadata']['name']} misses {sorted(required - set(env))}"
        for name in required:  # secrets come from Secrets, never from literals in a manifest
            assert "secretKeyRef" in env[name], f"{name} of {workload['metadata']['name']} is not a secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_there_is_a_kafka_topic_for_every_topic_of_the_design(overlay: str) -> None:
    topics = {d["spec"]["topicName"]: d["spec"] for d in of_kind(overlay, "KafkaTopic")}
    assert set(topics) == set(ALL_TOPICS)
    for spec in topics.values():
        assert spec["partitions"] >= 1
        assert "retention.ms" in spec["config"]
        assert int(spec["config"]["min.insync.replicas"]) <= spec["replicas"]
    for _, container in workloads(overlay):  # the operator owns the topics, not the services
        env = container_env(overlay, container)
        assert all(value == "false" for name, value in env.items() if name.endswith("_CREATE_TOPICS"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_lag_autoscaling_covers_the_consumers_and_never_exceeds_the_partitions(overlay: str) -> None:
    partitions = min(d["spec"]["partitions"] for d in of_kind(overlay, "KafkaTopic"))
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in of_kind(overlay, "ScaledObject")}
    assert set(scaled) == {"sla-engine", "reporting"}
    # Every consumer group a service runs (the group ids the services default to) has a lag trigger.
    groups = {"sla-engine": {"sla-engine", "sla-engine-signals"}, "reporting": {"reporting"}}
    for service, scaled_object in scaled.items():
        triggers = scaled_object["spec"]["triggers"]
        assert {trigger["type"] for trigger in triggers} == {"kafka"}
        assert {trigger["metadata"]["consumerGroup"] for trigger in triggers} == groups[service]
        # Extra consumers past the partition count sit idle: never scale beyond it.
        assert scaled_object["spec"]["maxReplicaCount"] <= partitions
    [hpa] = of_kind(overlay, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "intake"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["maxReplicas"] <= partitions


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_outlive_the_drain_and_probe_health_and_readiness(overlay: str) -> None:
    for deployment in of_kind(overlay, "Deployment"):
        service = service_of(deployment)
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env = container_env(overlay, container)
        prefix = service.replace("-", "_").upper()
        default = SERVICES[service].model_fields["drain_timeout_seconds"].default
        drain = float(env.get(f"{prefix}_DRAIN_TIMEOUT_SECONDS", default))
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        # uvicorn's HTTP drain, then the broker's drain, each bounded by drain_timeout_seconds.
        assert pod["terminationGracePeriodSeconds"] > pre_stop + 2 * drain
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert {"requests", "limits"} <= set(container["resources"])
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_jobs_run_alembic_with_the_service_own_alembic_ini(overlay: str) -> None:
    for service in SERVICES:
        job = named(overlay, "Job", f"{service}-migrate")
        [container] = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["alembic", "-c", f"services/{service}/alembic.ini", "upgrade", "head"]
        assert (REPO / "services" / service / "alembic.ini").exists()
        deployment = named(overlay, "Deployment", service)
        assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_reaches_intake_and_the_dashboard_and_the_rest_only_monitoring(overlay: str) -> None:
    for service in SERVICES:
        policy = named(overlay, "NetworkPolicy", service)
        [rule] = policy["spec"]["ingress"]
        namespaces = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in rule["from"]}
        reached_by_ingress = service in {"intake", "reporting"}  # webhooks/events; the dashboard and report links
        assert namespaces == ({"ingress-nginx", "monitoring"} if reached_by_ingress else {"monitoring"})
        migration = named(overlay, "NetworkPolicy", f"{service}-migrate")
        assert migration["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert not migration["spec"].get("ingress"), "nothing may reach a migration Job"


def egress_ports(policy: dict[str, Any]) -> list[set[int]]:
    return [{port["port"] for port in rule["ports"]} for rule in policy["spec"]["egress"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_egress_goes_only_to_dns_the_database_kafka_and_the_otlp_collector(overlay: str) -> None:
    for deployment in of_kind(overlay, "Deployment"):
        service = service_of(deployment)
        policy = named(overlay, "NetworkPolicy", service)
        assert "Egress" in policy["spec"]["policyTypes"]
        assert egress_ports(policy) == [{53}, {5432}, {9092, 9093}, {4318}]
        for rule in policy["spec"]["egress"]:
            for peer in rule["to"]:  # never "anywhere": each peer is selected or a private range
                assert peer.get("podSelector") or peer.get("ipBlock", {}).get("cidr", "0.0.0.0/0") != "0.0.0.0/0"
        # The policy's pods are the Deployment's, and the ports are the ones the settings point at.
        assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        env = container_env(overlay, container)
        prefix = service.replace("-", "_").upper()
        assert int(env[f"{prefix}_KAFKA__BOOTSTRAP_SERVERS"].rsplit(":", 1)[1]) in {9092, 9093}
        assert env[f"{prefix}_TRACING__OTLP_ENDPOINT"].split("/")[2].endswith(":4318")
        migration = named(overlay, "NetworkPolicy", f"{service}-migrate")
        assert egress_ports(migration) == [{53}, {5432}]
        assert migration["spec"]["egress"][1] == policy["spec"]["egress"][1]  # the same database peer
    if overlay == "prod":  # the managed database is outside the cluster
        assert named("prod", "NetworkPolicy", "reporting")["spec"]["egress"][1]["to"][0]["ipBlock"]["cidr"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_use_their_rows_only_role_and_migrations_the_owner_role(overlay: str) -> None:
    for service in SERVICES:
        prefix = service.replace("-", "_").upper()
        [app] = named(overlay, "Deployment", service)["spec"]["template"]["spec"]["containers"]
        [migration] = named(overlay, "Job", f"{service}-migrate")["spec"]["template"]["spec"]["containers"]
        app_secret = container_env(overlay, app)[f"{prefix}_DATABASE_URL"]["secretKeyRef"]["name"]
        owner_secret = container_env(overlay, migration)[f"{prefix}_DATABASE_URL"]["secretKeyRef"]["name"]
        assert app_secret.startswith(f"{service}-database")
        assert owner_secret.startswith(f"{service}-database-owner")
        assert not app_secret.startswith(f"{service}-database-owner")


def test_the_dev_secrets_name_the_app_and_owner_roles() -> None:
    secrets = {d["metadata"]["name"].rsplit("-", 1)[0]: d for d in of_kind("dev", "Secret")}
    for service in SERVICES:
        database = service.replace("-", "_")
        app = base64.b64decode(secrets[f"{service}-database"]["data"]["url"]).decode()
        owner = base64.b64decode(secrets[f"{service}-database-owner"]["data"]["url"]).decode()
        assert app.split("://", 1)[1].startswith(f"{database}_app:")
        assert owner.split("://", 1)[1].startswith(f"{database}_owner:")


def test_production_talks_to_kafka_over_tls_with_scram_and_a_secret_password() -> None:
    for service in SERVICES:
        prefix = service.replace("-", "_").upper()
        [container] = named("prod", "Deployment", service)["spec"]["template"]["spec"]["containers"]
        env = container_env("prod", container)
        assert env[f"{prefix}_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env[f"{prefix}_KAFKA__SASL_MECHANISM"].startswith("SCRAM-")
        assert "secretKeyRef" in env[f"{prefix}_KAFKA__SASL_PASSWORD"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert env[f"{prefix}_KAFKA__SSL_CAFILE"].rsplit("/", 1)[0] in mounts
    for scaled_object in of_kind("prod", "ScaledObject"):
        for trigger in scaled_object["spec"]["triggers"]:
            assert trigger["metadata"]["sasl"].startswith("scram_")
            assert trigger["metadata"]["tls"] == "enable"
            assert trigger["metadata"]["bootstrapServers"].endswith(":9093")
            named("prod", "TriggerAuthentication", trigger["authenticationRef"]["name"])


def test_production_exports_traces_and_the_default_sends_none() -> None:
    for service in SERVICES:
        prefix = service.replace("-", "_").upper()
        [container] = named("prod", "Deployment", service)["spec"]["template"]["spec"]["containers"]
        assert container_env("prod", container)[f"{prefix}_TRACING__EXPORTER"] == "otlp"
        [container] = named("dev", "Deployment", service)["spec"]["template"]["spec"]["containers"]
        assert container_env("dev", container)[f"{prefix}_TRACING__EXPORTER"] == "none"


def test_alert_rules_use_only_metrics_the_services_export() -> None:
    real = metric_names() | {"up"}
    [rule_set] = of_kind("prod", "PrometheusRule")
    for group in rule_set["spec"]["groups"]:
        for rule in group["rules"]:
            used = set(re.findall(r"\b(?:slm|intake|sla_engine|reporting)_[a-z0-9_]+\b", rule["expr"]))
            used |= {"up"} if re.search(r"\bup\{", rule["expr"]) else set()
            assert used, f"{rule['alert']} uses no metric of ours"
            assert used <= real, f"{rule['alert']}: {sorted(used - real)} are not exported"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_key_announcements_are_signed_by_intake_alone_and_verified_by_the_others(overlay: str) -> None:
    """docs/security.md: intake's signing key and the webhook secrets' encryption keys come from Secrets; the
    other services get only the public key, and none of them the private one."""
    for service in SERVICES:
        prefix = service.replace("-", "_").upper()
        [container] = named(overlay, "Deployment", service)["spec"]["template"]["spec"]["containers"]
        env = container_env(overlay, container)
        if service == "intake":
            assert "secretKeyRef" in env["INTAKE_KEY_SIGNING_KEY"]
            assert "secretKeyRef" in env["INTAKE_WEBHOOK_SECRET_KEYS"]
        else:
            assert env[f"{prefix}_KEY_ANNOUNCEMENT_PUBLIC_KEYS"]["configMapKeyRef"]["name"] == "slm-key-announcements"
            assert not any(name.endswith("KEY_SIGNING_KEY") for name in env)
