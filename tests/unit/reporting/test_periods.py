"""Reporting periods in the tenant's time zone and the split into whole UTC days."""

from __future__ import annotations

from datetime import UTC, date, datetime

from reporting.domain.periods import classify, period_containing, periods_between, previous_periods, split_utc_days


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_a_month_in_shanghai_starts_at_local_midnight_of_the_first() -> None:
    october = period_containing(utc("2026-10-15T12:00:00+08:00"), "Asia/Shanghai", "monthly")
    assert (october.start, october.end, october.label) == (
        utc("2026-09-30T16:00:00Z"),
        utc("2026-10-31T16:00:00Z"),
        "2026-10",
    )


def test_the_first_seconds_of_a_local_month_belong_to_it_even_when_utc_says_otherwise() -> None:
    assert period_containing(utc("2026-09-30T16:00:00Z"), "Asia/Shanghai", "monthly").label == "2026-10"
    assert period_containing(utc("2026-09-30T15:59:59Z"), "Asia/Shanghai", "monthly").label == "2026-09"


def test_a_month_with_a_daylight_saving_change_is_as_long_as_it_really_is() -> None:
    march = period_containing(utc("2026-03-15T12:00:00Z"), "Europe/Berlin", "monthly")
    assert (march.start, march.end) == (utc("2026-02-28T23:00:00Z"), utc("2026-03-31T22:00:00Z"))
    assert (march.end - march.start).total_seconds() == 31 * 86400 - 3600


def test_weeks_are_iso_weeks_from_monday() -> None:
    week = period_containing(utc("2026-10-15T12:00:00Z"), "UTC", "weekly")
    assert (week.start, week.label) == (utc("2026-10-12T00:00:00Z"), "2026-W42")


def test_the_trend_goes_back_six_calendar_months_oldest_first() -> None:
    october = period_containing(utc("2026-10-15T00:00:00Z"), "Asia/Shanghai", "monthly")
    assert [p.label for p in previous_periods(october, 6)] == [
        "2026-04",
        "2026-05",
        "2026-06",
        "2026-07",
        "2026-08",
        "2026-09",
    ]


def test_a_custom_window_trends_over_back_to_back_windows_of_its_length() -> None:
    window = classify(utc("2026-10-10T00:00:00Z"), utc("2026-10-20T00:00:00Z"), "UTC", "monthly")
    assert window.kind == "custom"
    previous = previous_periods(window, 2)
    assert [(p.start, p.end) for p in previous] == [
        (utc("2026-09-20T00:00:00Z"), utc("2026-09-30T00:00:00Z")),
        (utc("2026-09-30T00:00:00Z"), utc("2026-10-10T00:00:00Z")),
    ]


def test_only_periods_that_have_ended_are_due_for_closing() -> None:
    due = periods_between(utc("2026-08-20T00:00:00Z"), utc("2026-10-01T00:00:00Z"), "UTC", "monthly")
    assert [p.label for p in due] == ["2026-08", "2026-09"]


def test_a_period_splits_into_whole_utc_days_and_its_partial_edges() -> None:
    split = split_utc_days(utc("2026-09-30T16:00:00Z"), utc("2026-10-31T16:00:00Z"))
    assert (split.first_day, split.end_day) == (date(2026, 10, 1), date(2026, 10, 31))
    assert split.edges == (
        (utc("2026-09-30T16:00:00Z"), utc("2026-10-01T00:00:00Z")),
        (utc("2026-10-31T00:00:00Z"), utc("2026-10-31T16:00:00Z")),
    )
    assert split_utc_days(utc("2026-10-01T00:00:00Z"), utc("2026-11-01T00:00:00Z")).edges == ()
    inside = split_utc_days(utc("2026-10-01T02:00:00Z"), utc("2026-10-01T05:00:00Z"))
    assert inside.edges == ((utc("2026-10-01T02:00:00Z"), utc("2026-10-01T05:00:00Z")),)
    assert inside.first_day >= inside.end_day
