"""Notification figures and lead-time triggers (`before_due`) in the clock's business time, worked out by hand
on the calendar below (Asia/Shanghai, UTC+8 all year): Monday to Friday 09:00-12:00 and 13:00-18:00, China's
public holidays. 2026-12-07 is a Monday; 2027-01-01 (a Friday) is New Year's Day."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from reporting.domain.live import business_calendar
from reporting.domain.notification_policy import NotificationPolicy
from reporting.domain.notification_sending import ClockNow, still_holds, values_at
from reporting.domain.notifications import ClockFacts, plan
from slm_shared.events import CalendarData

SHANGHAI = ZoneInfo("Asia/Shanghai")
WORKDAY = ((9 * 3600, 12 * 3600), (13 * 3600, 18 * 3600))
CN_BUSINESS = CalendarData(
    calendar_id="cn-business",
    bundle_version=3,
    timezone="Asia/Shanghai",
    hours=(WORKDAY,) * 5 + ((), ()),
    holidays_country="CN",
)
CALENDARS = {("cn-business", 3): business_calendar(CN_BUSINESS)}


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def running(last: datetime, elapsed: int, due: datetime, target: int = 28_800, version: int = 3) -> ClockNow:
    return ClockNow("running", False, target, elapsed, last, due, None, "cn-business", version)


def test_figures_at_sending_time_leave_out_the_lunch_break() -> None:
    # Last transition Monday 11:30 with nothing elapsed; sent at 14:00: 11:30-12:00 and 13:00-14:00 count
    # (1,800 + 3,600 s), the lunch hour does not. Of 8 h: 23,400 s remain, 18.75 %.
    clock = running(local(2026, 12, 7, 11, 30), 0, local(2026, 12, 8, 11, 30))
    values = values_at(clock, local(2026, 12, 7, 14), CALENDARS)
    assert (values.elapsed_seconds, values.remaining_seconds, values.percent) == (5_400, 23_400, 18.75)
    assert (values.exact, values.as_of, values.due_at, values.note) == (
        True,
        local(2026, 12, 7, 14),
        local(2026, 12, 8, 11, 30),
        None,
    )


def test_figures_at_sending_time_leave_out_a_holiday_and_the_weekend() -> None:
    # Thursday 31 December 17:00 -> Monday 4 January 10:00: 17:00-18:00, then New Year's Day and the weekend
    # count nothing, then 09:00-10:00: 7,200 s on top of the 3,600 already elapsed.
    clock = running(local(2026, 12, 31, 17), 3_600, local(2027, 1, 4, 15))
    values = values_at(clock, local(2027, 1, 4, 10), CALENDARS)
    assert (values.elapsed_seconds, values.remaining_seconds, values.percent, values.exact) == (
        10_800,
        18_000,
        37.5,
        True,
    )


def test_a_clock_pinned_to_a_bundle_version_whose_calendar_is_unknown_keeps_its_figures_as_of() -> None:
    last = local(2026, 12, 7, 11, 30)
    clock = running(last, 1_800, local(2026, 12, 8, 11), version=4)  # version 4 was never announced
    values = values_at(clock, last + timedelta(hours=3), CALENDARS)
    assert (values.elapsed_seconds, values.remaining_seconds, values.exact, values.as_of) == (
        1_800,
        27_000,
        False,
        last,
    )
    assert values.note is not None
    assert "bundle version 4" in values.note


def lead_policy(lead: str, calendar: str = "") -> NotificationPolicy:
    return NotificationPolicy.model_validate(
        yaml.safe_load(f"""
channels: [{{name: desk, type: webhook, url: "http://127.0.0.1:1/hook"}}]
rules: [{{id: soon, triggers: [{{before_due: {lead}}}], channel: desk{calendar}}}]
""")
    )


def started(
    at: datetime,
    target: int,
    due: datetime,
    calendar: str = "cn-business",
    elapsed: int = 0,
    transition: str = "started",
    state: str = "running",
) -> ClockFacts:
    return ClockFacts(
        "T-1",
        "p1",
        "resolution",
        1,
        transition,
        at,
        None,
        "SLA",
        "P3",
        "email",
        "acme",
        state=state,
        due_at=due,
        elapsed_seconds=elapsed,
        target_seconds=target,
        calendar=calendar,
        policy_version=3,
    )


def test_a_24x7_lead_time_is_due_the_lead_before_the_deadline() -> None:
    at = datetime(2026, 12, 7, 10, tzinfo=UTC)
    planned = plan(started(at, 4 * 3600, at + timedelta(hours=4), calendar="24x7"), lead_policy("30m"), {})
    assert [(p.key, p.due_at, p.event_at) for p in planned] == [
        (
            "clock/T-1/p1/resolution/1/before_due:1800s/soon/0",
            datetime(2026, 12, 7, 13, 30, tzinfo=UTC),
            datetime(2026, 12, 7, 13, 30, tzinfo=UTC),
        )
    ]


def test_thirty_business_minutes_before_a_deadline_just_after_lunch_is_noon() -> None:
    # Started Monday 09:00 with 3.5 h: 09:00-12:00 and 13:00-13:30, due 13:30. 30 minutes of business time
    # before that is 12:00 (the lunch hour does not count), not 13:00; 60 minutes before is 11:30.
    facts = started(local(2026, 12, 7, 9), 12_600, local(2026, 12, 7, 13, 30))
    assert [p.due_at for p in plan(facts, lead_policy("30m"), CALENDARS)] == [local(2026, 12, 7, 12)]
    assert [p.due_at for p in plan(facts, lead_policy("1h"), CALENDARS)] == [local(2026, 12, 7, 11, 30)]


def test_a_lead_time_skips_new_year_s_day_and_the_weekend() -> None:
    # Started Thursday 31 December 17:00 with 2 h: 17:00-18:00, then Monday 4 January 09:00-10:00 (New Year's
    # Day and the weekend count nothing), due 10:00. 30 minutes before: Monday 09:30; 90 minutes: Thursday 17:30.
    facts = started(local(2026, 12, 31, 17), 7_200, local(2027, 1, 4, 10))
    assert [p.due_at for p in plan(facts, lead_policy("30m"), CALENDARS)] == [local(2027, 1, 4, 9, 30)]
    assert [p.due_at for p in plan(facts, lead_policy("90m"), CALENDARS)] == [local(2026, 12, 31, 17, 30)]


def test_a_lead_time_outside_the_rule_s_notification_calendar_waits_for_its_next_working_minute() -> None:
    # A 24x7 clock due 02:30 Shanghai time (Tuesday): 30 minutes before is 02:00, deferred to 09:00.
    at = local(2026, 12, 7, 22, 30)
    rule_calendar = ', calendar: {timezone: Asia/Shanghai, hours: {mon-fri: ["09:00-18:00"]}}'
    planned = plan(
        started(at, 4 * 3600, local(2026, 12, 8, 2, 30), calendar="24x7"), lead_policy("30m", rule_calendar), {}
    )
    assert [(p.due_at, p.event_at) for p in planned] == [(local(2026, 12, 8, 9), local(2026, 12, 8, 2))]


def test_a_resume_or_a_recalculation_plans_the_same_key_again_for_the_new_instant() -> None:
    # Resumed Monday 14:00 with 3 h used of 4 h: 1 h left, due 15:00; 30 minutes before is 14:30.
    resumed = started(local(2026, 12, 7, 14), 14_400, local(2026, 12, 7, 15), elapsed=10_800, transition="resumed")
    recalculated = replace(
        resumed,
        transition="recalculated",
        at=local(2026, 12, 7, 14, 10),
        elapsed_seconds=9_600,
        due_at=local(2026, 12, 7, 15, 30),
    )  # 1 h 20 min left at 14:10: due 15:30, lead at 15:00
    first, second = plan(resumed, lead_policy("30m"), CALENDARS), plan(recalculated, lead_policy("30m"), CALENDARS)
    assert [(p.key, p.due_at) for p in first + second] == [
        ("clock/T-1/p1/resolution/1/before_due:1800s/soon/0", local(2026, 12, 7, 14, 30)),
        ("clock/T-1/p1/resolution/1/before_due:1800s/soon/0", local(2026, 12, 7, 15)),
    ]


def test_no_lead_time_is_planned_when_already_within_it_paused_or_on_an_unknown_calendar() -> None:
    at = local(2026, 12, 7, 9)
    assert plan(started(at, 1_800, local(2026, 12, 7, 9, 30)), lead_policy("30m"), CALENDARS) == []
    assert (
        plan(
            started(at, 7_200, local(2026, 12, 7, 11), state="paused", transition="recalculated"),
            lead_policy("30m"),
            CALENDARS,
        )
        == []
    )
    assert plan(started(at, 7_200, local(2026, 12, 7, 11)), lead_policy("30m"), {}) == []
    assert plan(started(at, 7_200, local(2026, 12, 7, 11), transition="warning"), lead_policy("30m"), CALENDARS) == []


def test_at_sending_time_a_lead_time_needs_the_clock_running_towards_the_same_due_instant() -> None:
    due = local(2026, 12, 7, 15)
    clock = running(local(2026, 12, 7, 14), 10_800, due, target=14_400)
    assert still_holds("before_due:1800s", clock, due) is None
    assert still_holds("before_due:1800s", replace(clock, state="paused"), due) == "the clock is paused"
    moved = still_holds("before_due:1800s", replace(clock, due_at=local(2026, 12, 7, 15, 30)), due)
    assert moved is not None
    assert moved.startswith("the due instant moved")


@pytest.mark.parametrize("lead", ["0m", "8d", "30", "-5m"])
def test_a_lead_time_is_more_than_nothing_and_at_most_a_week(lead: str) -> None:
    with pytest.raises(ValidationError):
        lead_policy(lead)


def test_a_lead_time_trigger_names_only_its_lead() -> None:
    with pytest.raises(ValidationError):
        NotificationPolicy.model_validate(
            yaml.safe_load("""
channels: [{name: desk, type: webhook, url: "http://127.0.0.1:1/hook"}]
rules: [{id: soon, triggers: [{event: warning, threshold: 75, before_due: 30m}], channel: desk}]
""")
        )


def test_an_slo_alert_is_suppressed_at_sending_time_once_it_resolved_after_it_fired() -> None:
    fired = local(2026, 12, 7, 3)
    assert still_holds("slo:page", None, resolved_at=None, fired_at=fired) is None
    assert still_holds("slo:page", None, resolved_at=fired - timedelta(hours=1), fired_at=fired) is None  # before
    assert (
        still_holds("slo:page", None, resolved_at=fired + timedelta(minutes=5), fired_at=fired)
        == "the SLO alert resolved at 2026-12-07T03:05:00+08:00"
    )
