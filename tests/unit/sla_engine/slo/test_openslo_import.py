"""OpenSLO import: v1 and v1alpha SLOs become bundle entries; what is not carried over is reported."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from sla_engine.cli import main
from sla_engine.domain.bundle import parse_bundle
from sla_engine.domain.bundle.openslo import import_openslo
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.definition import CalendarWindow, RatioSli, RollingWindow

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
    threshold = V1.replace("  ratioMetric:\n", "  thresholdMetric:\n").replace("duration: 28d", "duration: 1Y")
    imported = import_openslo(threshold)
    assert any("only ratioMetric indicators are supported" in error for error in imported.errors)
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
