"""Instants a caller passes in a query or body (`from`, `to`, `at`): in UTC and inside the supported years.

Year 1 with a positive offset or year 9999 with a negative one cannot even be held in UTC, and period or
window arithmetic near either end overflows; such values answer 400 naming the parameter, never a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException, status

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def utc_instant(value: datetime, name: str) -> datetime:
    """`value` in UTC, or HTTP 400 if it lies outside [1970, 2200)."""
    try:
        instant = value.astimezone(UTC)
    except OverflowError as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"`{name}`: {value.isoformat()} cannot be held in UTC; use one in [1970, 2200)"
        ) from error
    if not EARLIEST <= instant < LATEST:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"`{name}`: {instant.isoformat()} is outside the supported years [1970, 2200)"
        )
    return instant
