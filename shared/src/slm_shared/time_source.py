"""The time source: the one place a service reads the wall clock.

Domains never read it (time is passed in); handlers, loops and the HTTP layer take a `Now` so tests can
move time by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Now = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
