"""Which threshold series a new bundle version adds, i.e. which ones are backfilled when it is applied."""

from __future__ import annotations

from sla_engine.domain.bundle import Bundle, parse_bundle
from sla_engine.domain.slo.backfill import added_threshold_series


def bundle(*thresholds: tuple[str, str, str]) -> Bundle:
    """A bundle with one 28-day threshold SLO per (service, op, value), on `latency_ms`, plus a ratio SLO."""
    entries = "".join(
        f"  - {{id: slo-{number}, service: {service}, objective: 99, window: {{rolling: 28d}},\n"
        f'     sli: {{type: threshold, sli: latency_ms, op: "{op}", value: {value}}}}}\n'
        for number, (service, op, value) in enumerate(thresholds)
    )
    ratio = (
        "  - {id: requests, service: api, objective: 99, window: {rolling: 28d},\n"
        "     sli: {type: ratio, sli: requests}}\n"
    )
    return parse_bundle("slos:\n" + entries + ratio)


def names(before: Bundle | None, after: Bundle) -> list[tuple[str, str]]:
    return [(service, threshold.rollup_key) for service, threshold in added_threshold_series(before, after)]


def test_every_threshold_of_a_tenants_first_version_is_added() -> None:
    assert names(None, bundle(("api", "<=", "300"), ("api", "<", "1000"))) == [
        ("api", "threshold:latency_ms<1000"),
        ("api", "threshold:latency_ms<=300"),
    ]


def test_a_changed_value_is_a_new_series_and_an_unchanged_one_is_not() -> None:
    before = bundle(("api", "<=", "300"), ("web", "<=", "300"))
    assert names(before, bundle(("api", "<=", "250"), ("web", "<=", "300"))) == [("api", "threshold:latency_ms<=250")]


def test_reapplying_the_same_thresholds_adds_nothing() -> None:
    same = bundle(("api", "<=", "300"), ("api", ">", "5"))
    assert names(same, same) == []


def test_two_slos_on_one_series_add_it_once() -> None:
    assert names(None, bundle(("api", "<=", "300"), ("api", "<=", "300"))) == [("api", "threshold:latency_ms<=300")]


def test_the_same_threshold_on_another_service_is_another_series() -> None:
    assert names(bundle(("api", "<=", "300")), bundle(("api", "<=", "300"), ("web", "<=", "300"))) == [
        ("web", "threshold:latency_ms<=300")
    ]


def test_300_and_300_point_0_are_two_series_as_they_are_stored() -> None:
    assert names(bundle(("api", "<=", "300")), bundle(("api", "<=", "300.0"))) == [
        ("api", "threshold:latency_ms<=300.0")
    ]
