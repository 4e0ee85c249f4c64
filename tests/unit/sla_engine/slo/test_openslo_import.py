"""OpenSLO import: v1 and v1alpha SLOs become bundle entries; what is not carried over is reported."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from sla_engine.cli import main
from sla_engine.domain.bundle import parse_bundle
from sla_engine.domain.bundle.openslo import import_openslo
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.definition import CalendarWindow, RatioSli, RollingWindow, ThresholdSli

V1 = """\
apiVersion: openslo/v1
kind: SLI
metadata: {name: requests}
spec:
  ratioMetric:
    counter: true
    good: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(http_ok[1m]))'}}}
    total: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(http_all[1m]))'}}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: api-success, displayName: API success}
spec:
  service: api
  indicatorRef: requests
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{displayName: good, target: 0.995}]
  alertPolicies: [fast-burn]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: api-slices}
spec:
  service: api
  indicatorRef: requests
  timeWindow: [{duration: 1M, isRolling: false, calendar: {startTime: "2026-01-01 00:00:00", timeZone: Asia/Shanghai}}]
  budgetingMethod: Timeslices
  objectives: [{target: 0.999, timeSliceTarget: 0.95, timeSliceWindow: 1m}]
"""

V1ALPHA = """\
apiVersion: openslo/v1alpha
kind: SLO
metadata: {name: checkout, displayName: Checkout}
spec:
  service: shop
  budgetingMethod: Occurrences
  timeWindows: [{unit: Day, count: 30, isRolling: true}]
  objectives:
    - ratioMetrics:
        good: {source: prometheus, queryType: promql, query: 'sum(rate(ok[{{.window}}]))'}
        total: {source: prometheus, queryType: promql, query: 'sum(rate(all[{{.window}}]))'}
        incremental: true
      target: 0.9
"""


def test_v1_slos_with_a_referenced_sli_become_exact_definitions() -> None:
    imported = import_openslo(V1)
    assert imported.errors == []
    success, slices = imported.definitions
    assert (success.id, success.service, success.sli) == ("api-success", "api", RatioSli("requests"))
    assert success.objective == Decimal("99.5")
    assert success.window == RollingWindow(28 * 86_400)
    assert slices.budgeting == "timeslices"
    assert slices.timeslice_target == Decimal(95)
    assert slices.objective == Decimal("99.9")
    assert slices.window == CalendarWindow("month", "Asia/Shanghai")


def test_fields_not_carried_over_are_reported_with_their_path() -> None:
    unsupported = "\n".join(import_openslo(V1).unsupported)
    assert "documents[1].spec.alertPolicies" in unsupported
    assert "documents[1].metadata.displayName" in unsupported
    assert "indicator.spec.ratioMetric: metric sources are not queried" in unsupported
    assert "documents[2].spec.timeWindow[0].calendar.startTime" in unsupported


def test_the_v1alpha_form_sloth_reads_is_imported() -> None:
    imported = import_openslo(V1ALPHA)
    assert imported.errors == []
    (checkout,) = imported.definitions
    assert (checkout.id, checkout.service, checkout.sli) == ("checkout", "shop", RatioSli("checkout"))
    assert checkout.objective == Decimal(90)
    assert checkout.window == RollingWindow(30 * 86_400)
    assert any("ratioMetrics: queries are not run" in line for line in imported.unsupported)


def test_unsupported_indicators_and_windows_are_errors_not_silent_drops() -> None:
    raw = V1.replace("  ratioMetric:\n", "  rawMetric:\n").replace("duration: 28d", "duration: 1Y")
    imported = import_openslo(raw)
    assert any("only ratioMetric and thresholdMetric indicators are supported" in error for error in imported.errors)
    assert any("rolling '1Y' is not supported" in error for error in imported.errors)
    assert imported.definitions == []
    assert import_openslo("kind: [").errors[0].startswith("<document>: not valid YAML")


def test_the_cli_prints_a_bundle_section_that_parses_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "slo.yaml"
    source.write_text(V1)
    with pytest.raises(SystemExit) as exited:
        main(["openslo", str(source)])
    assert exited.value.code == 0
    printed = capsys.readouterr()
    assert "note: documents[1].spec.alertPolicies" in printed.err
    bundle = parse_bundle(printed.out)
    assert [slo.id for slo in bundle.slos] == ["api-success", "api-slices"]
    assert slo_definition(bundle.slos[0]).objective == Decimal("99.5")


THRESHOLD = """\
apiVersion: openslo/v1
kind: SLI
metadata: {name: latency_ms}
spec:
  thresholdMetric:
    metricSource: {type: Prometheus, spec: {query: 'histogram_quantile(0.99, rate(latency_bucket[1m]))'}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: api-latency}
spec:
  service: api
  indicatorRef: latency_ms
  timeWindow: [{duration: 7d, isRolling: true}]
  budgetingMethod: Timeslices
  objectives: [{op: lte, value: 300, target: 0.99, timeSliceTarget: 0.95, timeSliceWindow: 5m}]
"""


def test_a_threshold_metric_becomes_a_threshold_sli_with_the_objectives_comparison() -> None:
    imported = import_openslo(THRESHOLD)
    assert imported.errors == []
    assert imported.entries == [
        {
            "id": "api-latency",
            "service": "api",
            "sli": {"type": "threshold", "sli": "latency_ms", "op": "<=", "value": 300},
            "objective": "99",
            "window": {"rolling": "7d"},
            "budgeting": "timeslices",
            "timeslice": "5m",
            "timeslice_target": "95",
        }
    ]
    (latency,) = imported.definitions
    assert latency.sli == ThresholdSli("latency_ms", "<=", Decimal(300))
    assert latency.timeslice_seconds == 300
    assert any("thresholdMetric: metric sources are not queried" in note for note in imported.unsupported)


@pytest.mark.parametrize(("op", "operator"), [("lt", "<"), ("lte", "<="), ("gt", ">"), ("gte", ">=")])
def test_every_openslo_operator_maps_to_its_comparison(op: str, operator: str) -> None:
    (latency,) = import_openslo(THRESHOLD.replace("op: lte", f"op: {op}")).definitions
    assert latency.sli == ThresholdSli("latency_ms", operator, Decimal(300))  # type: ignore[arg-type]


def test_a_threshold_objective_without_a_comparison_is_an_error() -> None:
    imported = import_openslo(THRESHOLD.replace("op: lte, value: 300, ", "op: eq, "))
    assert imported.definitions == []
    assert imported.errors == [
        "documents[1].spec.objectives[0].op: 'eq' is not one of: lt, lte, gt, gte",
        "documents[1].spec.objectives[0].value: a threshold objective needs a number, not None",
    ]


def test_ratio_timeslices_and_longer_slices_are_mapped() -> None:
    imported = import_openslo(
        V1.replace("budgetingMethod: Timeslices", "budgetingMethod: RatioTimeslices").replace(
            "timeSliceWindow: 1m", "timeSliceWindow: 1h"
        )
    )
    assert imported.errors == []
    slices = imported.definitions[1]
    assert (slices.budgeting, slices.timeslice_seconds) == ("ratio_timeslices", 3_600)
    # Ratio timeslices score each slice by its ratio: a slice target has no use and is reported.
    assert (
        "documents[2].spec.objectives[0].timeSliceTarget: used by Timeslices only, not carried over"
        in imported.unsupported
    )
    assert "timeslice_target" not in imported.entries[1]


def test_a_slice_length_the_bundle_cannot_tile_is_an_error_with_its_path() -> None:
    imported = import_openslo(V1.replace("timeSliceWindow: 1m", "timeSliceWindow: 7m"))
    assert imported.errors == [
        "slos[1] (api-slices).timeslice: '7m' is not whole minutes dividing a day (e.g. 1m, 5m, 1h, 1d)"
    ]
    assert import_openslo(V1.replace("timeSliceWindow: 1m", "timeSliceWindow: soon")).errors == [
        "documents[2].spec.objectives[0].timeSliceWindow: 'soon' is not a slice length such as 1m, 5m or 1h"
    ]


def test_target_percent_is_read_like_target() -> None:
    (success, _) = import_openslo(V1.replace("target: 0.995", "targetPercent: 99.5")).definitions
    assert success.objective == Decimal("99.5")


def test_a_composite_objective_with_its_own_indicator_is_an_error() -> None:
    composite = V1.replace(
        "objectives: [{displayName: good, target: 0.995}]",
        "objectives: [{displayName: good, target: 0.995, indicatorRef: requests}]",
    )
    assert import_openslo(composite).errors == [
        "documents[1].spec.objectives[0]: objectives with an indicator of their own (composite SLOs) are not supported"
    ]
