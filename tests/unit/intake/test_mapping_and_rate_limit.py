"""Per-tenant webhook mappings merge over the defaults; token buckets per key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from intake.domain.mapping import DEFAULTS, MappingOverride, effective_mapping
from slm_shared.ratelimit import RateLimiter


def test_an_override_merges_its_entries_over_the_defaults_key_by_key() -> None:
    override = MappingOverride(statuses={"Waiting For Customer": "on_hold", "Triage": "open"}, default_priority="P4")
    mapping = effective_mapping("jira", override)
    assert mapping.statuses["waiting for customer"] == "on_hold"
    assert mapping.statuses["triage"] == "open"
    assert mapping.statuses["resolved"] == "resolved"
    assert mapping.default_priority == "P4"
    assert mapping.priority_for("no such priority") == "P4"


def test_without_an_override_the_defaults_apply() -> None:
    assert effective_mapping("zendesk", None) == DEFAULTS["zendesk"]


def test_an_override_with_a_non_canonical_status_is_refused() -> None:
    with pytest.raises(ValidationError):
        MappingOverride.model_validate({"statuses": {"open": "sort of open"}})


def test_an_override_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError):
        MappingOverride.model_validate({"colours": {}})


def test_a_key_may_spend_its_burst_and_then_waits_for_the_refill() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("k", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k", 100.0) == pytest.approx(0.5)
    assert limiter.take("k", 100.5) == 0.0


def test_buckets_are_per_key() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.take("a", 0.0) == 0.0
    assert limiter.take("b", 0.0) == 0.0
    assert limiter.take("a", 0.0) > 0


def test_a_rate_of_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(rate=0.0, burst=1)
    assert all(limiter.take("k", 0.0) == 0.0 for _ in range(1000))


def test_the_least_recently_used_key_is_forgotten_beyond_the_key_limit() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=2)
    for key in ("a", "b", "c"):
        limiter.take(key, 0.0)
    assert limiter.take("a", 0.0) == 0.0  # "a" was evicted: a fresh bucket


@pytest.mark.parametrize(
    "override", [{"statuses": {"a\x00": "open"}}, {"default_service": "nul\x00"}, {"priorities": {"x": "\ud800"}}]
)
def test_an_override_with_text_postgres_cannot_store_is_refused(override: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MappingOverride.model_validate(override)
