"""Running clocks brought forward to the report's instant (reporting.domain.live)."""

from __future__ import annotations

from datetime import UTC, datetime

from reporting.domain.live import live_values

AS_OF = datetime(2026, 12, 6, 10, 0, 0, 787_000, tzinfo=UTC)  # a `recalculated` stamped mid-second


def test_a_running_24x7_clock_gains_the_whole_seconds_between_as_the_engine_floors_them() -> None:
    # The engine's elapsed at 10:00:00.787 counted up to 10:00:00; at 10:01:40.500 it counts up to 10:01:40: 100 s
    # more, not the 99 that flooring the 99.713 s in between would give.
    at = datetime(2026, 12, 6, 10, 1, 40, 500_000, tzinfo=UTC)
    values = live_values("running", "24x7", 1_000, 3_600, AS_OF, at)
    assert (values.elapsed_seconds, values.remaining_seconds, values.live) == (1_100, 2_500, True)


def test_a_running_business_hours_clock_keeps_its_stored_value_marked_as_of() -> None:
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    values = live_values("running", "cn-business", 1_000, 3_600, AS_OF, at)
    assert (values.elapsed_seconds, values.live) == (1_000, False)


def test_a_paused_clock_does_not_grow_and_is_exact_at_any_later_instant() -> None:
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    values = live_values("paused", "24x7", 1_000, 3_600, AS_OF, at)
    assert (values.elapsed_seconds, values.live) == (1_000, True)
