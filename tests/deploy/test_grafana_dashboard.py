"""The Grafana dashboard is valid JSON and every panel queries metrics the services really export."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.support import DEPLOY, metric_names

DASHBOARD = DEPLOY / "grafana" / "slm-dashboard.json"
# Not ours: Strimzi's Kafka Exporter publishes consumer-group lag, the figure KEDA scales on.
EXTERNAL_METRICS = {"kafka_consumergroup_lag"}
PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "by",
    "without",
    "label_values",
    "le",
    "job",
    "topic",
    "outcome",
    "namespace",
    "transition",
    "channel",
    "code",
    "consumergroup",
    "state",
    "breached",
    "kind",
    "format",
    "group",
    "task",
    "reason",
}


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def metrics_in(expr: str) -> set[str]:
    """Identifiers outside label matchers and strings, less PromQL functions, keywords and label names."""
    bare = re.sub(r'"[^"]*"', "", re.sub(r"\{[^}]*\}", "", expr))
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    return set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", bare)) - PROMQL_WORDS


def test_the_dashboard_is_a_grafana_dashboard_with_unique_panel_ids() -> None:
    document = dashboard()
    assert document["uid"] == "slm-overview"
    assert isinstance(document["schemaVersion"], int)
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])


def test_every_panel_queries_only_metrics_the_services_export() -> None:
    real = metric_names() | EXTERNAL_METRICS
    assert "slm_events_consumed_total" in real, "the registry walk found the runtime's metrics"
    for title, expr in queries():
        used = metrics_in(expr)
        assert used, f"{title}: no metric in {expr!r}"
        assert used <= real, f"{title}: {sorted(used - real)} are not exported by any service"


def test_every_metric_the_services_export_has_a_panel() -> None:
    used = set().union(*(metrics_in(expr) for _, expr in queries()))
    bases = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in used}
    exported = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in metric_names()}
    # prometheus_client's own process and platform collectors are not ours to chart.
    ours = {name for name in exported if name.startswith(("slm_", "intake_", "sla_engine_", "reporting_"))}
    assert ours <= bases, f"no panel for {sorted(ours - bases)}"


def test_the_metric_extraction_sees_a_misspelt_metric() -> None:
    assert metrics_in('sum by (job) (rate(slm_event_consumed_total{namespace="x"}[5m]))') == {
        "slm_event_consumed_total"
    }
