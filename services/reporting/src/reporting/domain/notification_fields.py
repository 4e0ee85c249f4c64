"""The notification policy's field types: storable strings, names, recipients, durations, the stored context."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field

STORED = "stored"  # validation context: a policy read back from the store, its secrets kept apart
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def storable(value: str) -> str:
    """Stored as PostgreSQL JSON, which holds neither U+0000 nor a lone surrogate (not UTF-8)."""
    if "\x00" in value:
        raise ValueError("must not contain U+0000")
    try:
        value.encode()
    except UnicodeEncodeError as error:
        raise ValueError("must be valid UTF-8 (no lone surrogates)") from error
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable)]
Recipient = Annotated[str, Field(min_length=1, max_length=320), AfterValidator(storable)]


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`: wall-clock time (an escalation waits in real minutes, not business ones)."""
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError(f"duration {text!r}: a whole number and one of s, m, h, d, e.g. 30m")
    return timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)])


def _duration(value: str) -> str:
    if parse_duration(value) > timedelta(days=30):
        raise ValueError("at most 30d")
    return value


Duration = Annotated[str, Field(max_length=16), AfterValidator(_duration)]
