"""The notification decision, pure: which notifications a transition makes due and when, with values worked
out by hand (2026-12-07 is a Monday; Asia/Shanghai is UTC+8 without daylight saving)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
import yaml
from pydantic import ValidationError

from reporting.domain.messages import duration_text, notification_message
from reporting.domain.notification_calendar import NotificationCalendar
from reporting.domain.notification_corrections import Retracted, Said, corrections
from reporting.domain.notification_policy import MAX_RULES, NotificationPolicy
from reporting.domain.notification_sending import (
    Arrival,
    ClockNow,
    Lateness,
    on_arrival,
    retry_delay,
    still_holds,
    values_at,
)
from reporting.domain.notification_templates import Templates
from reporting.domain.notifications import AlertFacts, ClockFacts, ReportFacts, plan, repeat_after
from reporting.notifications.channels import standard_webhook_signature

SHANGHAI = timezone(timedelta(hours=8))
WORKING_HOURS = {"timezone": "Asia/Shanghai", "hours": {"mon-fri": ["09:00-12:00", "13:00-18:00"]}}


def policy(text: str) -> NotificationPolicy:
    return NotificationPolicy.model_validate(yaml.safe_load(text))


POLICY = policy("""
channels:
  - {name: desk, type: webhook, url: "http://127.0.0.1:1/hook", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}
  - {name: pager, type: pagerduty, url: "http://127.0.0.1:1/v2/enqueue", secret: R0UTINGKEY}
rules:
  - id: p4-warnings
    triggers: [{event: warning, threshold: 75}]
    match: {priority: [P3, P4]}
    channel: desk
    recipients: [service-desk]
    calendar: {timezone: Asia/Shanghai, hours: {mon-fri: ["09:00-12:00", "13:00-18:00"]}}
  - id: p1-breaches
    triggers: [breached, stopped_breached]
    match: {priority: P1, agreement: SLA}
    channel: pager
    recipients: [oncall]
    escalation:
      levels: [{after: 0m}, {after: 30m, recipients: [duty-manager]}]
      repeat_every: 60m
      max_repeats: 2
""")


def clock(transition: str, at: datetime, priority: str, threshold: int | None = None) -> ClockFacts:
    return ClockFacts(
        ticket_id="INC-1",
        policy_id="gold",
        metric="resolution",
        cycle=1,
        transition=transition,
        at=at,
        threshold=threshold,
        agreement="SLA",
        priority=priority,
        service="email",
        customer="acme",
    )


def test_a_p4_warning_at_two_in_the_night_is_due_at_the_next_working_minute() -> None:
    planned = plan(clock("warning", datetime(2026, 12, 8, 2, 0, tzinfo=SHANGHAI), "P4", 75), POLICY)
    assert [(p.rule_id, p.trigger, p.level, p.due_at) for p in planned] == [
        ("p4-warnings", "warning:75", 0, datetime(2026, 12, 8, 9, 0, tzinfo=SHANGHAI))
    ]
    assert planned[0].key == "clock/INC-1/gold/resolution/1/warning:75/p4-warnings/0"
    assert planned[0].recipients == ("service-desk",)


def test_the_calendar_defers_over_lunch_and_over_the_weekend_and_keeps_working_instants() -> None:
    calendar = NotificationCalendar.model_validate(WORKING_HOURS)
    assert calendar.next_working_instant(datetime(2026, 12, 8, 10, 17, 5, tzinfo=SHANGHAI)) == datetime(
        2026, 12, 8, 10, 17, 5, tzinfo=SHANGHAI
    )
    assert calendar.next_working_instant(datetime(2026, 12, 8, 12, 30, tzinfo=SHANGHAI)) == datetime(
        2026, 12, 8, 13, 0, tzinfo=SHANGHAI
    )
    assert calendar.next_working_instant(datetime(2026, 12, 11, 18, 0, tzinfo=SHANGHAI)) == datetime(
        2026, 12, 14, 9, 0, tzinfo=SHANGHAI
    )  # Friday 18:00 (the end is exclusive) -> Monday 09:00
    # An instant given in UTC is answered in UTC: Saturday 03:00 UTC is Saturday 11:00 in Shanghai.
    assert calendar.next_working_instant(datetime(2026, 12, 12, 3, 0, tzinfo=UTC)) == datetime(
        2026, 12, 14, 1, 0, tzinfo=UTC
    )


def test_the_calendar_counts_wall_clock_hours_across_a_daylight_saving_change() -> None:
    calendar = NotificationCalendar.model_validate({"timezone": "Europe/Berlin", "hours": {"mon-fri": ["09:00-17:00"]}})
    # Sunday 2026-03-29 is the spring change in Berlin; Monday 09:00 is then UTC+2, 07:00 UTC.
    assert calendar.next_working_instant(datetime(2026, 3, 28, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 30, 7, 0, tzinfo=UTC
    )


def test_a_warning_of_another_threshold_or_priority_notifies_nobody() -> None:
    assert plan(clock("warning", datetime(2026, 12, 8, 10, 0, tzinfo=SHANGHAI), "P4", 90), POLICY) == []
    assert plan(clock("warning", datetime(2026, 12, 8, 10, 0, tzinfo=SHANGHAI), "P2", 75), POLICY) == []


def test_a_breach_plans_every_level_of_its_ladder_and_a_recalculation_plans_nothing() -> None:
    at = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    planned = plan(clock("breached", at, "P1"), POLICY)
    assert [(p.level, p.due_at, p.channel, p.recipients) for p in planned] == [
        (0, at, "pager", ("oncall",)),
        (1, at + timedelta(minutes=30), "pager", ("duty-manager",)),
    ]
    assert {p.ladder for p in planned} == {"clock/INC-1/gold/resolution/1/breached/p1-breaches"}
    assert plan(clock("recalculated", at, "P1"), POLICY) == []


def test_the_same_transition_plans_the_same_keys_so_a_replay_adds_nothing() -> None:
    at = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    assert [p.key for p in plan(clock("breached", at, "P1"), POLICY)] == [
        p.key for p in plan(clock("breached", at + timedelta(hours=5), "P1"), POLICY)
    ]


def test_the_last_level_repeats_every_hour_until_the_repeats_are_used_up() -> None:
    at = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    rule = POLICY.rule("p1-breaches")
    assert rule is not None
    first, second = plan(clock("breached", at, "P1"), POLICY)
    assert repeat_after(rule, first) is None  # not the last level: the ladder already holds level 1
    third = repeat_after(rule, second)
    assert third is not None
    assert (third.level, third.due_at, third.recipients) == (
        2,
        datetime(2026, 12, 8, 4, 30, tzinfo=UTC),
        ("duty-manager",),
    )
    fourth = repeat_after(rule, third)
    assert fourth is not None
    assert (fourth.level, fourth.due_at) == (3, datetime(2026, 12, 8, 5, 30, tzinfo=UTC))
    assert repeat_after(rule, fourth) is None  # max_repeats: 2


def test_a_stop_resolves_the_pagerduty_incident_and_a_final_breach_is_told_once() -> None:
    at = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    planned = plan(clock("stopped_breached", at, "P1"), POLICY)
    assert [(p.trigger, p.level) for p in planned] == [("stopped_breached", 0), ("resolve", 0)]
    assert [(p.trigger, p.due_at) for p in plan(clock("met", at, "P1"), POLICY)] == [("resolve", at)]


def test_an_slo_alert_notifies_only_while_firing() -> None:
    alerting = policy("""
channels: [{name: am, type: alertmanager, url: "http://127.0.0.1:1"}]
rules: [{id: slo-pages, triggers: [{event: slo_alert, alert: page}], channel: am, match: {service: api}}]
""")
    at = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    firing = plan(AlertFacts("api-success", "api", "page", "firing", at), alerting)
    assert [(p.trigger, p.key) for p in firing] == [
        ("slo:page", "slo/api-success/page/2026-12-08T03:00:00+00:00/slo:page/slo-pages/0")
    ]
    assert plan(AlertFacts("api-success", "api", "page", "resolved", at), alerting) == []
    assert plan(AlertFacts("api-success", "web", "page", "firing", at), alerting) == []


def test_at_sending_time_an_answered_paused_or_stopped_clock_suppresses_warnings_and_breaches() -> None:
    def now(state: str, breached: bool = False) -> ClockNow:
        return ClockNow(state, breached, 3600, 2700, datetime(2026, 12, 8, 3, 0, tzinfo=UTC), None, None, "24x7")

    assert still_holds("warning:75", now("running")) is None
    assert still_holds("warning:75", now("paused")) == "the clock is paused"
    assert still_holds("warning:75", now("met")) == "the clock is met"
    assert still_holds("breached", now("running", breached=True)) is None
    assert still_holds("breached", now("breached", breached=True)) == "the clock is breached"
    assert still_holds("stopped_breached", now("breached", breached=True)) is None
    assert still_holds("warning:75", None) == "the clock is not in the read model"


def test_a_24x7_clock_s_values_are_computed_for_the_sending_instant() -> None:
    last = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    running = ClockNow("running", False, 3600, 2700, last, last + timedelta(seconds=900), None, "24x7")
    values = values_at(running, last + timedelta(minutes=5), {})
    assert (values.elapsed_seconds, values.remaining_seconds, values.percent, values.exact) == (3000, 600, 83.33, True)
    business = ClockNow("running", False, 3600, 2700, last, last + timedelta(hours=20), None, "cn-business")
    values = values_at(business, last + timedelta(minutes=5), {})  # a calendar reporting has not received
    assert (values.elapsed_seconds, values.as_of, values.exact, values.due_at) == (
        2700,
        last,
        False,
        last + timedelta(hours=20),
    )
    assert values.note is not None
    assert "'cn-business'" in values.note


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    assert retry_delay(1, 0.0) == timedelta(seconds=5)
    assert retry_delay(1, 0.5) == timedelta(seconds=7.5)
    assert retry_delay(4, 0.0) == timedelta(seconds=40)  # 10 s x 2^3, halved
    assert retry_delay(30, 0.0) == timedelta(minutes=30)  # the 1 h cap, halved


def test_the_standard_webhooks_test_vector_signs_as_the_reference_libraries_do() -> None:
    assert (
        standard_webhook_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_durations_read_in_both_languages() -> None:
    assert duration_text(3900, "en") == "1h 05m"
    assert duration_text(-300, "en") == "-5m"
    assert duration_text(3900, "zh-CN") == "1小时05分"


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        (
            {
                "rules": [{"id": f"r{i}", "triggers": ["breached"], "channel": "c"} for i in range(MAX_RULES + 1)],
                "channels": [{"name": "c", "type": "slack", "url": "http://x"}],
            },
            "at most 200 items",
        ),
        ({"rules": [{"id": "r", "triggers": ["breached"], "channel": "missing"}]}, "no channel named 'missing'"),
        ({"channels": [{"name": "c", "type": "webhook", "url": "http://x", "secret": "plain"}]}, "whsec_"),
        ({"channels": [{"name": "c", "type": "pagerduty", "url": "http://x"}]}, "routing key"),
        (
            {
                "rules": [{"id": "r", "triggers": [{"event": "warning"}], "channel": "c"}],
                "channels": [{"name": "c", "type": "slack", "url": "http://x"}],
            },
            "threshold",
        ),
        (
            {
                "rules": [
                    {
                        "id": "r",
                        "triggers": ["breached"],
                        "channel": "c",
                        "escalation": {"levels": [{"after": "30m"}, {"after": "10m"}]},
                    }
                ],
                "channels": [{"name": "c", "type": "slack", "url": "http://x"}],
            },
            "in order of `after`",
        ),
        (
            {
                "rules": [
                    {
                        "id": "r",
                        "triggers": ["breached"],
                        "channel": "c",
                        "calendar": {"timezone": "Mars/Olympus", "hours": {"mon": ["09:00-17:00"]}},
                    }
                ],
                "channels": [{"name": "c", "type": "slack", "url": "http://x"}],
            },
            "unknown IANA time zone",
        ),
        (
            {
                "rules": [
                    {
                        "id": "r",
                        "triggers": ["breached"],
                        "channel": "c",
                        "calendar": {"hours": {"mon-fri": ["18:00-09:00"]}},
                    }
                ],
                "channels": [{"name": "c", "type": "slack", "url": "http://x"}],
            },
            "ends after it starts",
        ),
    ],
)
def test_a_policy_over_its_limits_or_inconsistent_is_refused_with_the_reason(
    document: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint.replace("(", r"\(").replace("`", ".")):
        NotificationPolicy.model_validate(document)


CORRECTING = policy("""
channels:
  - {name: desk, type: webhook, url: "http://127.0.0.1:1/hook"}
rules:
  - {id: told-and-corrected, triggers: [breached], channel: desk, recipients: [oncall], on_recalculation: correct}
  - {id: told-once, triggers: [breached], channel: desk, recipients: [oncall]}
""")


def test_a_recalculation_that_retracts_a_sent_breach_plans_one_correction_for_the_rule_that_asks() -> None:
    breach = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    before = Said("breached", "running", True, breach)
    after = Said("recalculated", "running", False, breach + timedelta(minutes=30))
    facts = clock("recalculated", breach + timedelta(minutes=20), "P1")
    planned = corrections(
        facts,
        "3",
        after,
        Retracted("breached", breach, None),
        {"told-and-corrected": before, "told-once": before},
        CORRECTING,
    )
    assert [(p.rule_id, p.trigger, p.key, p.due_at, changed) for p, changed in planned] == [
        (
            "told-and-corrected",
            "correction",
            "clock/INC-1/gold/resolution/1/correction/told-and-corrected/3",
            breach + timedelta(minutes=20),
            ["retracted", "breached", "due_at"],
        )
    ]
    # The same recalculation again (a redelivery, a republication): the same key.
    assert [p.key for p, _ in corrections(facts, "3", after, None, {"told-and-corrected": before}, CORRECTING)] == [
        planned[0][0].key
    ]


def test_a_recalculation_that_changes_nothing_said_or_finds_nothing_sent_plans_no_correction() -> None:
    breach = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    said = Said("breached", "running", True, breach)
    facts = clock("recalculated", breach + timedelta(minutes=20), "P1")
    assert (
        corrections(
            facts, "4", Said("recalculated", "running", True, breach), None, {"told-and-corrected": said}, CORRECTING
        )
        == []
    )
    assert corrections(facts, "4", Said("recalculated", "met", False, None), None, {}, CORRECTING) == []
    # Only what was said counts: a stop after a sent warning changes its state.
    [(_, changed)] = corrections(
        facts,
        "5",
        Said("recalculated", "met", False, None),
        None,
        {"told-and-corrected": Said("warning:75", "running", False, breach)},
        CORRECTING,
    )
    assert changed == ["due_at", "state"]


def test_a_published_report_notifies_rules_whose_filters_match_its_scope_once_per_revision() -> None:
    reports = policy("""
channels: [{name: desk, type: webhook, url: "http://127.0.0.1:1/hook"}]
rules:
  - {id: all, triggers: [report_published], channel: desk, escalation: {levels: [{after: 0m}, {after: 1h}]}}
  - {id: acme, triggers: [report_published], match: {customer: acme}, channel: desk}
  - {id: breaches, triggers: [breached], channel: desk}
""")
    at = datetime(2026, 10, 1, 1, 30, tzinfo=UTC)
    whole = plan(ReportFacts("r-1", None, None, at), reports)
    assert [(p.rule_id, p.key, p.level, p.due_at) for p in whole] == [
        ("all", "report/r-1/report.published/all/0", 0, at)
    ]  # a publication is a fact: its first level only
    assert [p.rule_id for p in plan(ReportFacts("r-2", None, "acme", at), reports)] == ["all", "acme"]


TEMPLATED = {
    "language": "zh-Hans",
    "templates": {
        "en": {"title": "[$priority] $ticket_id: $trigger"},
        "zh-Hans": {"title": "【$priority】$ticket_id 已违约", "text": "请处理 $ticket_id，剩余 $remaining"},
    },
    "channels": [{"name": "desk", "type": "webhook", "url": "http://127.0.0.1:1/hook"}],
    "rules": [
        {
            "id": "own",
            "triggers": ["breached"],
            "channel": "desk",
            "templates": {"zh": {"text": "值班请看 $ticket_id"}},
        },
        {"id": "tenant", "triggers": ["breached"], "channel": "desk", "language": "en"},
    ],
}


def test_templates_fall_back_field_by_field_from_the_rule_to_the_tenant_in_either_language() -> None:
    templated = NotificationPolicy.model_validate(TEMPLATED)
    own, tenant = templated.rules
    assert templated.language == "zh-CN"  # zh-Hans and zh are Simplified Chinese
    assert templated.templates_for(own, "zh-CN") == Templates(
        title="【$priority】$ticket_id 已违约", text="值班请看 $ticket_id"
    )
    assert templated.templates_for(tenant, "en") == Templates(title="[$priority] $ticket_id: $trigger")
    assert templated.templates_for(tenant, "zh-CN") == templated.templates["zh-CN"]


def test_a_template_renders_its_names_and_the_explained_clock_link_is_always_in_the_message() -> None:
    templated = NotificationPolicy.model_validate(TEMPLATED)
    facts = {"ticket_id": "INC-7", "metric": "resolution", "priority": "P1", "service": "email", "customer": "acme"}
    link = "http://sla-engine.test/v1/tickets/INC-7/clocks?at=2026-12-08T03:00:00%2B00:00"
    message = notification_message(
        "breached",
        0,
        dict(facts),
        None,
        "zh-CN",
        templated.templates_for(templated.rules[0], "zh-CN"),
        link,
        "Asia/Shanghai",
    )
    assert message.title == "【P1】INC-7 已违约"
    assert message.fields[0] == ("", "值班请看 INC-7")
    assert f"时钟详情: {link}" in message.text.splitlines()  # the template never names $link: still there
    english = notification_message(
        "breached", 0, dict(facts), None, "en", templated.templates_for(templated.rules[1], "en"), link, "UTC"
    )
    assert english.title == "[P1] INC-7: breached"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("$ticket_id at $nope", "unknown template names ['nope']"),
        ("${ticket_id.__class__}", "not a valid template"),
        ("违" * 1366, "at most 4096 bytes"),  # 4,098 bytes in UTF-8, under 4,096 characters
    ],
)
def test_a_template_with_an_unknown_name_or_over_its_bytes_is_refused_at_the_door(template: str, reason: str) -> None:
    document = {**TEMPLATED, "templates": {"en": {"text": template}}}
    with pytest.raises(ValidationError, match=re.escape(reason)):
        NotificationPolicy.model_validate(document)


def test_an_event_s_arrival_makes_its_notification_on_time_late_overtaken_or_stale() -> None:
    breach = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    lateness = Lateness(late_after=timedelta(minutes=1), horizon=timedelta(hours=24), settle=timedelta(seconds=30))
    assert on_arrival(breach, breach, breach + timedelta(seconds=59), lateness, newest=True) == Arrival(
        None, breach, late=False
    )
    two_hours = breach + timedelta(hours=2)
    assert on_arrival(breach, breach, two_hours, lateness, newest=True) == Arrival(
        None, two_hours + timedelta(seconds=30), late=True
    )
    # A later ladder level still in the future keeps its instant.
    assert on_arrival(
        breach + timedelta(hours=3), breach, two_hours, lateness, newest=True
    ).due_at == breach + timedelta(hours=3)
    assert (
        on_arrival(breach, breach, two_hours, lateness, newest=False).suppressed
        == "superseded: its cycle had moved on when it arrived"
    )
    assert (
        on_arrival(breach, breach, breach + timedelta(hours=25), lateness, newest=True).suppressed
        == "stale: received 1 day, 1:00:00 after the event"
    )


def test_a_warning_whose_cycle_breached_before_it_went_out_is_superseded_by_the_breach() -> None:
    at = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
    breached = ClockNow("running", True, 14400, 14400, at, at, at, "24x7")
    assert still_holds("warning:75", breached) == "superseded by the cycle's breach"
    assert still_holds("breached", breached) is None
