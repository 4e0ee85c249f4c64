"""The read side's SQL building blocks: templates, the report's scope, a period's whole UTC days and edges."""

from __future__ import annotations

from dataclasses import dataclass
from string import Template
from typing import TYPE_CHECKING, Any

from reporting.domain.periods import split_utc_days

if TYPE_CHECKING:
    from datetime import date, datetime


def compose(template: str, **fragments: str) -> str:
    """SQL from a template and fragments the read side wrote (column lists, scope and edge conditions);
    every value from a request is a bound parameter, never a fragment."""
    return Template(template).substitute(fragments)


@dataclass(frozen=True)
class Scope:
    tenant: str
    service: str | None = None
    customer: str | None = None

    def sql(self, alias: str = "", customer: bool = True) -> str:
        prefix = f"{alias}." if alias else ""
        parts = []
        if self.service is not None:
            parts.append(f" AND {prefix}service = :service")
        if self.customer is not None and customer:
            parts.append(f" AND {prefix}customer = :customer")
        return "".join(parts)

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"tenant": self.tenant, "service": self.service, "customer": self.customer, **extra}


def period_edges(start: datetime, end: datetime, column: str) -> tuple[date, date, str, dict[str, Any]]:
    """[start, end) as whole UTC days (for the rollups) and an SQL condition on `column` for the partial edges."""
    split = split_utc_days(start, end)
    clauses, params = [], {}
    for index, (edge_start, edge_end) in enumerate(split.edges):
        clauses.append(f"({column} >= :edge{index}_start AND {column} < :edge{index}_end)")
        params[f"edge{index}_start"] = edge_start
        params[f"edge{index}_end"] = edge_end
    return split.first_day, split.end_day, "(" + (" OR ".join(clauses) or "false") + ")", params
