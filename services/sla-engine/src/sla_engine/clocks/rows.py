"""How the clock side's repositories read rows: a stored snapshot decoded, and (tenant, ticket) pairs selected."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from sla_engine.domain.timeline import TicketSnapshot

if TYPE_CHECKING:
    from collections.abc import Sequence


def snapshot_from_row(row: Any) -> TicketSnapshot:
    data = row.snapshot
    return TicketSnapshot(
        event_id=row.event_id,
        time=row.event_time,
        arrival=row.arrival,
        ticket_id=row.ticket_id,
        action=data["action"],
        kind=data["kind"],
        status=data["status"],
        priority=data["priority"],
        service=data["service"],
        customer=data["customer"],
        assignment_group=data.get("assignment_group"),
        assignee=data.get("assignee"),
        attributes=data.get("attributes") or {},
    )


def in_pairs(table: sa.Table, pairs: Sequence[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """(tenant, ticket) among `pairs`, as two arrays unnested: one statement text whatever their number, so the
    driver's prepared-statement cache serves it. An `IN` list of N pairs is a new statement (parsed and planned
    again) for every N, and the reconcile loop's rounds vary in size."""
    tenants = sa.bindparam(None, [tenant for tenant, _ in pairs], type_=ARRAY(sa.Text))
    tickets = sa.bindparam(None, [ticket for _, ticket in pairs], type_=ARRAY(sa.Text))
    wanted = sa.func.unnest(tenants, tickets).table_valued("tenant_id", "ticket_id").render_derived()
    return sa.tuple_(table.c.tenant_id, table.c.ticket_id).in_(sa.select(wanted.c.tenant_id, wanted.c.ticket_id))
