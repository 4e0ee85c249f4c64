"""Intake's unit of work: one transaction with the ledger, rejections, mappings, tenants and the outbox."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from intake import tables
from intake.repository import SqlMappings, SqlReceivedEvents, SqlRejections, SqlTenants
from slm_shared.outbox import Outbox
from slm_shared.unit_of_work import SessionOutbox, SqlUnitOfWork

OUTBOX = Outbox(tables.outbox)


class IntakeUnitOfWork(SqlUnitOfWork):
    """Satisfies `intake.ports.IntakeUnitOfWorkPort`; built per transaction by the factory `create_app` makes."""

    received: SqlReceivedEvents
    rejections: SqlRejections
    mappings: SqlMappings
    tenants: SqlTenants
    outbox: SessionOutbox

    def _open(self, session: AsyncSession) -> None:
        self.received = SqlReceivedEvents(session)
        self.rejections = SqlRejections(session)
        self.mappings = SqlMappings(session)
        self.tenants = SqlTenants(session)
        self.outbox = SessionOutbox(OUTBOX, session)
