"""Bundle parsing: every error names its field and line; a good bundle survives dump and parse unchanged."""

from __future__ import annotations

import json

import pytest
import yaml

from sla_engine.domain.bundle import (
    BundleError,
    BundleIssue,
    dump_bundle,
    format_duration,
    parse_bundle,
    parse_duration,
)
from slm_shared.business_time import TWENTY_FOUR_SEVEN

# The example of DESIGN.md section 3 without its comments; line numbers below refer to this text.
DESIGN_EXAMPLE = """\
calendars:
  - name: cn-business
    timezone: Asia/Shanghai
    hours: {mon-fri: ["09:00-12:00", "13:00-18:00"]}
    holidays: {country: CN}
    extra_holidays: ["2026-10-09"]
    extra_workdays: {"2026-10-11": mon}
  - name: 24x7
policies:
  - id: gold-incidents
    name: Gold incident SLA
    agreement: SLA
    match: {kind: incident, customer: [acme, globex]}
    metrics:
      - metric: response
        calendar: cn-business
        targets: {P1: 15m, P2: 1h, P3: 4h, P4: 1d}
        stop: {actions: [agent_replied], statuses: [resolved, closed]}
        cancel: {statuses: [cancelled]}
        warn_at: [50, 75, 90]
      - metric: resolution
        calendar: cn-business
        targets: {P1: 4h, P2: 8h, P3: 3d, P4: 5d}
        pause: {statuses: [pending_customer, pending_vendor]}
        stop: {statuses: [resolved, closed]}
        cancel: {statuses: [cancelled]}
        on_reopen: resume
        warn_at: [75, 90]
slos:
  - id: email-availability
    service: email
    sli: {type: availability, degraded_weight: 0.0}
    objective: 99.9
    window: {calendar: month, timezone: Asia/Shanghai}
"""


def issues_of(text: str, content_type: str = "yaml") -> list[BundleIssue]:
    with pytest.raises(BundleError) as caught:
        parse_bundle(text, content_type="json" if content_type == "json" else "yaml")
    return caught.value.errors


def defect(old: str, new: str) -> str:
    assert DESIGN_EXAMPLE.count(old) == 1, old
    return DESIGN_EXAMPLE.replace(old, new)


ERROR_CASES = [
    # (id, text, path, line, words in the message)
    ("bad duration unit", defect("P2: 8h", "P2: 8x"), "policies[0].metrics[1].targets.P2", 23, "not a duration"),
    ("duration without unit", defect("P1: 15m", "P1: 900"), "policies[0].metrics[0].targets.P1", 17, "give a unit"),
    ("zero duration", defect("P3: 4h", "P3: 0m"), "policies[0].metrics[0].targets.P3", 17, "positive"),
    (
        "unknown metric key",
        defect("        stop: {statuses: [resolved, closed]}", "        stopp: {statuses: [resolved, closed]}"),
        "policies[0].metrics[1].stopp",
        25,
        "unknown key",
    ),
    (
        "unknown calendar",
        defect(
            "        calendar: cn-business\n        targets: {P1: 4h",
            "        calendar: cn-busines\n        targets: {P1: 4h",
        ),
        "policies[0].metrics[1].calendar",
        22,
        "unknown calendar 'cn-busines'",
    ),
    (
        "unknown time zone",
        defect("timezone: Asia/Shanghai\n    hours", "timezone: Asia/Shanghia\n    hours"),
        "calendars[0].timezone",
        3,
        "unknown time zone",
    ),
    (
        "duplicate calendar name",
        defect("  - name: 24x7\n", '  - name: cn-business\n    timezone: UTC\n    hours: {sat: ["10:00-12:00"]}\n'),
        "calendars[1].name",
        8,
        "duplicate calendar name",
    ),
    (
        "redefined 24x7",
        defect("  - name: 24x7\n", "  - {name: 24x7, timezone: UTC}\n"),
        "calendars[1].name",
        8,
        "built in",
    ),
    (
        "interval ending before it starts",
        defect('"13:00-18:00"', '"18:00-09:00"'),
        "calendars[0].hours.mon-fri[1]",
        4,
        "not a wall-clock interval",
    ),
    ("overlapping intervals", defect('"13:00-18:00"', '"11:00-18:00"'), "calendars[0].hours.mon-fri[1]", 4, "overlaps"),
    (
        "minutes out of range",
        defect('"09:00-12:00"', '"09:00-12:60"'),
        "calendars[0].hours.mon-fri[0]",
        4,
        "not a wall-clock interval",
    ),
    ("bad weekday range", defect("mon-fri:", "mon-fry:"), "calendars[0].hours.mon-fry", 4, "not a weekday"),
    (
        "non-canonical status",
        defect("pending_customer, pending_vendor", "pending_customer, waiting_vendor"),
        "policies[0].metrics[1].pause.statuses[1]",
        24,
        "not a canonical status",
    ),
    (
        "non-canonical action",
        defect("agent_replied", "agent_reply"),
        "policies[0].metrics[0].stop.actions[0]",
        18,
        "not a canonical action",
    ),
    (
        "unknown holiday country",
        defect("country: CN", "country: XX"),
        "calendars[0].holidays.country",
        5,
        "unknown holiday country",
    ),
    (
        "unknown holiday subdivision",
        defect("country: CN}", "country: CN, subdivision: ZZ}"),
        "calendars[0].holidays.subdivision",
        5,
        "unknown subdivision",
    ),
    (
        "warning at 100 percent",
        defect("warn_at: [50, 75, 90]", "warn_at: [50, 100, 90]"),
        "policies[0].metrics[0].warn_at[1]",
        20,
        "between 1 and 99",
    ),
    (
        "warning at 0 percent",
        defect("warn_at: [75, 90]", "warn_at: [0, 90]"),
        "policies[0].metrics[1].warn_at[0]",
        28,
        "between 1 and 99",
    ),
    (
        "make-up day that is also an extra holiday",
        defect('"2026-10-11": mon', '"2026-10-09": mon'),
        "calendars[0].extra_workdays.2026-10-09",
        7,
        "also in extra_holidays",
    ),
    (
        "make-up day on a weekday without hours",
        defect('"2026-10-11": mon', '"2026-10-11": sat'),
        "calendars[0].extra_workdays.2026-10-11",
        7,
        "no working hours",
    ),
    (
        "bad extra holiday date",
        defect('["2026-10-09"]', '["2026-13-09"]'),
        "calendars[0].extra_holidays[0]",
        6,
        "not a date",
    ),
    ("unknown agreement", defect("agreement: SLA", "agreement: SLO"), "policies[0].agreement", 12, "'SLO'"),
    (
        "unknown reopen rule",
        defect("on_reopen: resume", "on_reopen: restart"),
        "policies[0].metrics[1].on_reopen",
        27,
        "'restart'",
    ),
    (
        "duplicate YAML key",
        defect("    agreement: SLA\n", "    name: Again\n    agreement: SLA\n"),
        "policies[0].name",
        12,
        "duplicate key",
    ),
    (
        "status in pause and stop",
        defect("[pending_customer, pending_vendor]", "[pending_customer, resolved]"),
        "policies[0].metrics[1].stop.statuses[0]",
        25,
        "already in pause.statuses",
    ),
    (
        "unknown ticket kind in match",
        defect("kind: incident,", "kind: incidnet,"),
        "policies[0].match.kind",
        13,
        "not a ticket kind",
    ),
    ("unknown match field", defect("customer: [acme", "client: [acme"), "policies[0].match.client", 13, "unknown key"),
    ("SLO without service", defect("    service: email\n", ""), "slos[0].service", 30, "non-empty string"),
    ("unknown top-level key", defect("slos:", "slo:"), "slo", 29, "unknown key"),
    (
        "quoted number needed for a match value",
        defect("customer: [acme, globex]", "customer: [acme, 42]"),
        "policies[0].match.customer[1]",
        13,
        "quote it",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "line", "words"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_each_error_names_its_field_and_line(text: str, path: str, line: int, words: str) -> None:
    issues = issues_of(text)
    assert [(i.path, i.line) for i in issues] == [(path, line)], issues
    assert words in issues[0].message


def test_a_missing_required_field_is_reported_at_its_parent_line() -> None:
    issues = issues_of(defect("  - id: gold-incidents", "  - ident: gold-incidents"))
    assert {(i.path, i.line) for i in issues} == {("policies[0].ident", 10), ("policies[0].id", 10)}


def test_duplicate_policy_ids_are_reported_on_the_second() -> None:
    second = DESIGN_EXAMPLE.replace(
        "slos:\n",
        """\
  - id: gold-incidents
    agreement: OLA
    metrics: [{metric: response, calendar: 24x7, targets: {P1: 1h}}]
slos:
""",
    )
    assert [(i.path, i.line) for i in issues_of(second)] == [("policies[1].id", 29)]


def test_every_error_is_collected_not_only_the_first() -> None:
    text = defect("P2: 8h", "P2: 8x").replace("agreement: SLA", "agreement: SLO").replace("country: CN", "country: XX")
    assert [(i.path, i.line) for i in issues_of(text)] == [
        ("calendars[0].holidays.country", 5),
        ("policies[0].agreement", 12),
        ("policies[0].metrics[1].targets.P2", 23),
    ]


def test_a_yaml_syntax_error_names_its_line() -> None:
    issues = issues_of(defect("targets: {P1: 4h, P2: 8h, P3: 3d, P4: 5d}", "targets: {P1: 4h, P2: 8h, P3: 3d, P4: 5d"))
    assert len(issues) == 1
    assert issues[0].message.startswith("invalid YAML")
    assert issues[0].line in {23, 24}


def test_json_errors_name_the_line_in_the_json_text() -> None:
    document = yaml.safe_load(DESIGN_EXAMPLE)
    document["policies"][0]["metrics"][1]["targets"]["P2"] = "8x"
    text = json.dumps(document, indent=2)
    line = [row.strip() for row in text.splitlines()].index('"P2": "8x",') + 1
    issues = issues_of(text, "json")
    assert [(i.path, i.line) for i in issues] == [("policies[0].metrics[1].targets.P2", line)]


def test_invalid_json_names_its_line() -> None:
    issues = issues_of('{\n  "calendars": [],\n  "policies": [,]\n}', "json")
    assert [(i.path, i.line) for i in issues] == [("", 3)]


def test_an_empty_document_is_an_error() -> None:
    assert [i.path for i in issues_of("")] == [""]


def test_the_design_example_parses_into_the_documented_rules() -> None:
    bundle = parse_bundle(DESIGN_EXAMPLE)
    response, resolution = bundle.policy("gold-incidents").metrics
    assert dict(response.targets) == {"P1": 900, "P2": 3600, "P3": 14400, "P4": 86400}
    assert dict(resolution.targets) == {"P1": 14400, "P2": 28800, "P3": 3 * 86400, "P4": 5 * 86400}
    assert (response.stop_actions, response.stop_statuses) == (("agent_replied",), ("resolved", "closed"))
    assert (response.on_reopen, resolution.on_reopen) == ("ignore", "resume")
    assert resolution.pause_statuses == ("pending_customer", "pending_vendor")
    assert resolution.warn_at == (75, 90)
    assert dict(bundle.policy("gold-incidents").match) == {"kind": ("incident",), "customer": ("acme", "globex")}
    calendar = bundle.calendar("cn-business")
    assert (calendar.name, calendar.timezone) == ("cn-business", "Asia/Shanghai")
    assert bundle.calendar("24x7") is TWENTY_FOUR_SEVEN
    assert [c.name for c in bundle.calendars] == ["cn-business"]
    assert [(s.id, s.service) for s in bundle.slos] == [("email-availability", "email")]
    with pytest.raises(KeyError):
        bundle.policy("silver")


def test_a_good_bundle_round_trips_through_dump_as_json_and_as_yaml() -> None:
    bundle = parse_bundle(DESIGN_EXAMPLE)
    dumped = dump_bundle(bundle)
    assert parse_bundle(json.dumps(dumped), content_type="json") == bundle
    assert parse_bundle(yaml.safe_dump(dumped)) == bundle
    assert dump_bundle(parse_bundle(json.dumps(dumped), content_type="json")) == dumped


def test_the_dump_is_canonical() -> None:
    dumped = dump_bundle(parse_bundle(DESIGN_EXAMPLE))
    assert dumped["calendars"] == [
        {
            "name": "cn-business",
            "timezone": "Asia/Shanghai",
            "hours": {"mon-fri": ["09:00-12:00", "13:00-18:00"]},
            "holidays": {"country": "CN"},
            "extra_holidays": ["2026-10-09"],
            "extra_workdays": {"2026-10-11": "mon"},
        }
    ]
    assert dumped["policies"][0]["metrics"][0]["targets"] == {"P1": "15m", "P2": "1h", "P3": "4h", "P4": "1d"}
    assert dumped["slos"][0]["window"] == {"calendar": "month", "timezone": "Asia/Shanghai"}


def test_weekday_ranges_may_wrap_around_the_week_end() -> None:
    text = 'calendars: [{name: gulf, timezone: Asia/Dubai, hours: {sun-thu: ["08:00-16:00"]}}]'
    config = parse_bundle(text).calendars[0]
    assert [bool(day) for day in config.hours] == [True, True, True, True, False, False, True]
    assert dump_bundle(parse_bundle(text))["calendars"][0]["hours"] == {
        "mon-thu": ["08:00-16:00"],
        "sun": ["08:00-16:00"],
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15m", 900),
        ("1h", 3600),
        ("4h30m", 16200),
        ("1d", 86400),
        ("90s", 90),
        ("1d2h3m4s", 93784),
    ],
)
def test_durations_are_business_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "30m4h", "1.5h", "-1h", "0s", "1 h"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(86400, "1d"), (16200, "4h30m"), (90, "1m30s"), (900, "15m")])
def test_durations_are_dumped_canonically(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
