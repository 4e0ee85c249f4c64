"""Intake's pure domain: acceptance rules, webhook adapters, value mappings, rate limiting.

No I/O here and no clock reads: `now` is passed in, which keeps every rule a unit test.
"""

from intake.domain.acceptance import (
    REJECT_CODES,
    ROUTES,
    EventResult,
    Limits,
    Outcome,
    RejectCode,
    Rejected,
    Routed,
    accept,
    check_values,
    first_occurrences,
    parse_json,
    parse_rfc3339,
    reject_result,
    route,
    split_json_array,
)

__all__ = [
    "REJECT_CODES",
    "ROUTES",
    "EventResult",
    "Limits",
    "Outcome",
    "RejectCode",
    "Rejected",
    "Routed",
    "accept",
    "check_values",
    "first_occurrences",
    "parse_json",
    "parse_rfc3339",
    "reject_result",
    "route",
    "split_json_array",
]
