"""Body limits by route: exact paths, prefixes ending in `*` (the longest wins), else the default."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import HTTPException

from slm_shared.instants import utc_instant
from slm_shared.request_guard import BodyLimits


def test_the_most_specific_limit_applies() -> None:
    limits = BodyLimits(1000, {"/v1/events": 5000, "/v1/webhooks/*": 4000, "/v1/webhooks/jira*": 3000})
    assert limits.for_path("/v1/events") == 5000
    assert limits.for_path("/v1/events/x") == 1000
    assert limits.for_path("/v1/webhooks/zendesk") == 4000
    assert limits.for_path("/v1/webhooks/jira") == 3000
    assert limits.for_path("/v1/replay") == 1000


def test_instants_outside_the_supported_years_are_a_400() -> None:
    assert utc_instant(datetime(2026, 1, 1, tzinfo=UTC), "at") == datetime(2026, 1, 1, tzinfo=UTC)
    for value in (datetime(1, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)):
        with pytest.raises(HTTPException) as caught:
            utc_instant(value, "at")
        assert caught.value.status_code == 400
        assert "`at`" in str(caught.value.detail)
