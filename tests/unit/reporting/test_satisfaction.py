"""CSAT per service and customer, verbatims and the complaint log on a hand-made period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reporting.domain.config import ReportingConfig
from reporting.domain.quality import Answer
from reporting.domain.satisfaction import Handling, satisfaction

AT = datetime(2026, 10, 20, tzinfo=UTC)
CONFIG = ReportingConfig(csat_min_answers=3, csat_min_response_rate=0.5)


def answer(
    ticket: str,
    score: int,
    comment: str | None = None,
    customer: str = "acme",
    service: str = "email",
    scale: int = 5,
    hours: int = 0,
) -> Answer:
    return Answer(ticket, service, customer, score, scale, AT + timedelta(hours=hours), comment)


ANSWERS = [
    answer("T1", 5, "quick and kind", hours=1),
    answer("T2", 4, "fine", hours=2),
    answer("T3", 2, "took days", hours=3),
    answer("T4", 1, "never called back", customer="globex", hours=4),
    answer("T5", 4, customer="globex", hours=5),
]


def test_each_service_and_customer_gets_answers_response_rate_and_a_note_when_too_thin() -> None:
    result = satisfaction(
        ANSWERS, {("email", "acme"): 4, ("email", "globex"): 10}, [("2026-09", [])], {}, CONFIG, "2026-10"
    )
    acme, globex = result.rows
    # acme: 5/5, 4/5 satisfied, 2/5 not: 2 of 3; mean (1 + .8 + .4) / 3 = 73.33 %; 3 answers of 4 resolutions.
    assert (acme.customer, acme.satisfied.numerator, acme.satisfied.denominator, acme.mean_score_percent) == (
        "acme",
        2,
        3,
        73.33,
    )
    assert (acme.response_rate.percent, acme.representative, acme.note) == (75.0, True, None)
    # globex: 2 answers of 10 resolutions: too few answers and a 20 % response rate.
    assert (globex.representative, globex.response_rate.percent) == (False, 20.0)
    assert globex.note == (
        "Not representative: 2 answers (fewer than 3) and a response rate of 20.0 % "
        "(under 50 %); read the score as an indication, not a verdict."
    )
    assert [(p.label, p.satisfied.denominator) for p in globex.trend] == [("2026-09", 0), ("2026-10", 2)]


def test_verbatims_are_the_harshest_unsatisfied_and_the_warmest_satisfied_comments() -> None:
    result = satisfaction(ANSWERS, {}, [], {}, CONFIG)
    assert [v.ticket_id for v in result.concerns] == ["T4", "T3"]  # 1/5, 2/5
    assert [v.ticket_id for v in result.praise] == ["T1", "T2"]  # 5/5, 4/5 (T5 has no comment)


def test_the_complaint_log_holds_low_scores_and_marked_answers_with_their_handling() -> None:
    handling = {
        "T4": Handling(False, "in_progress", "li.wei", "called back", "IMP-1"),
        "T5": Handling(True, "acknowledged", None, None, None),
    }
    complaints = satisfaction(ANSWERS, {}, [], handling, CONFIG).complaints
    # Under 0.6 of the scale: T3 (2/5) and T4 (1/5); T5 (4/5) because a person marked it.
    assert [(c.ticket_id, c.reason, c.status, c.improvement_id) for c in complaints] == [
        ("T3", "score", "open", None),
        ("T4", "score", "in_progress", "IMP-1"),
        ("T5", "marked", "acknowledged", None),
    ]
