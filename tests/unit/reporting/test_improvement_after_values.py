"""When an improvement's after-value is measured (reporting.domain.improvements): provisionally at completion, and
finally when the first whole period after the completion closes; the review shows that entry as `measured`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from reporting.domain.improvements import AT_CLOSE, AT_COMPLETION, completed_at, measures_after
from reporting.domain.periods import period_containing
from reporting.domain.review import ImprovementItem, movement

SHANGHAI = ZoneInfo("Asia/Shanghai")
DONE_AT = datetime(2026, 10, 20, 12, 0, tzinfo=SHANGHAI)
HISTORY: list[dict[str, Any]] = [
    {"at": datetime(2026, 10, 2, 9, tzinfo=SHANGHAI).isoformat(), "status": "open", "note": None},
    {"at": DONE_AT.isoformat(), "status": "done", "note": "rota in place"},
]
OCTOBER = period_containing(datetime(2026, 10, 15, tzinfo=SHANGHAI), "Asia/Shanghai", "monthly")
NOVEMBER = period_containing(datetime(2026, 11, 15, tzinfo=SHANGHAI), "Asia/Shanghai", "monthly")
DECEMBER = period_containing(datetime(2026, 12, 15, tzinfo=SHANGHAI), "Asia/Shanghai", "monthly")
PROVISIONAL = {
    "start": OCTOBER.start.isoformat(),
    "end": DONE_AT.isoformat(),
    "label": "2026-10",
    "measured": AT_COMPLETION,
}


def test_the_completion_is_the_last_done_of_the_history() -> None:
    assert completed_at(HISTORY) == DONE_AT
    assert completed_at(HISTORY[:1]) is None


def test_only_the_close_of_the_first_whole_period_after_the_completion_measures_the_after_value() -> None:
    # Completed on 20 October: October holds the completion (its value would mix before and after), November is
    # the first whole period after it, December is too late.
    assert not measures_after("done", HISTORY, PROVISIONAL, OCTOBER)
    assert measures_after("done", HISTORY, PROVISIONAL, NOVEMBER)
    assert not measures_after("done", HISTORY, PROVISIONAL, DECEMBER)


def test_an_entry_not_done_or_measured_at_a_close_already_is_left_alone() -> None:
    assert not measures_after("in_progress", HISTORY[:1], None, NOVEMBER)
    assert not measures_after("done", HISTORY, {**PROVISIONAL, "measured": AT_CLOSE}, NOVEMBER)


def test_the_review_of_the_period_that_measured_it_shows_the_entry_as_measured() -> None:
    final = {
        "start": NOVEMBER.start.astimezone(UTC).isoformat(),
        "end": NOVEMBER.end.astimezone(UTC).isoformat(),
        "label": "2026-11",
        "measured": AT_CLOSE,
    }
    record = ImprovementItem(
        "IMP-1",
        "Call back unhappy customers",
        "complaint",
        "INC-02",
        {"kpi": "csat_satisfied"},
        "done",
        None,
        "li.wei",
        date(2026, 12, 31),
        80.0,
        ">=",
        75.0,
        85.0,
        final,
        created_at=datetime(2026, 10, 2, 9, tzinfo=SHANGHAI),
        history=HISTORY,
    )
    assert movement(record, OCTOBER.start, OCTOBER.end) == "closed"
    assert movement(record, NOVEMBER.start, NOVEMBER.end) == "measured"
    assert movement(record, DECEMBER.start, DECEMBER.end) is None
