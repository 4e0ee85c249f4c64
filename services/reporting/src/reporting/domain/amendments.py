"""What changed between a published snapshot and the same period recomputed after late events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reporting.domain.model import Change

Scalar = str | int | float | bool | None
# Fields that differ between any two generations and say nothing about the service delivered.
IGNORED_PREFIXES = ("header.generated_at", "header.published", "data_notes", "clocks", "amendment", "sections")


def flatten(document: Any, prefix: str = "") -> dict[str, Scalar]:
    """Paths to scalars; list items of rows are keyed by their identifying fields when they have them."""
    found: dict[str, Scalar] = {}
    if isinstance(document, Mapping):
        for key, value in document.items():
            found.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(document, Sequence) and not isinstance(document, str):
        for index, item in enumerate(document):
            found.update(flatten(item, f"{prefix}[{_row_key(item, index)}]"))
    else:
        found[prefix] = document
    return found


_IDENTITY = (
    "ticket_id",
    "agreement",
    "policy_id",
    "metric",
    "cycle",
    "priority",
    "service",
    "slo_id",
    "alert",
    "label",
    "event_type",
)


def _row_key(item: Any, index: int) -> str:
    if isinstance(item, Mapping):
        parts = [f"{k}={item[k]}" for k in _IDENTITY if k in item and not isinstance(item[k], Mapping | list)]
        if parts:
            return ",".join(parts)
    return str(index)


def changes(before: Mapping[str, Any], after: Mapping[str, Any], limit: int = 500) -> list[Change]:
    """Every substantive field that differs, in path order (at most `limit`)."""
    old, new = flatten(before), flatten(after)
    paths = sorted(p for p in set(old) | set(new) if not p.startswith(IGNORED_PREFIXES) and old.get(p) != new.get(p))
    return [Change(path, old.get(path), new.get(path)) for path in paths[:limit]]
