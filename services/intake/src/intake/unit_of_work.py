"""Intake's unit of work: one transaction with the ledger, rejections, mappings, tenants, webhook secrets, API
keys and the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intake import tables
from intake.keys import SqlApiKeys
from intake.repository import SqlMappings, SqlReceivedEvents, SqlRejections, SqlTenants
from intake.webhook_secrets import SqlWebhookSecrets
from slm_shared.outbox import Outbox
from slm_shared.unit_of_work import SessionOutbox, SqlUnitOfWork

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from slm_shared.secret_cipher import SecretCipher

OUTBOX = Outbox(tables.outbox)


class IntakeUnitOfWork(SqlUnitOfWork):
    """Satisfies `intake.ports.IntakeUnitOfWorkPort`; built per transaction by the factory `create_app` makes."""

    received: SqlReceivedEvents
    rejections: SqlRejections
    mappings: SqlMappings
    tenants: SqlTenants
    webhook_secrets: SqlWebhookSecrets
    api_keys: SqlApiKeys
    outbox: SessionOutbox

    def __init__(self, sessions: async_sessionmaker[AsyncSession], cipher: SecretCipher) -> None:
        super().__init__(sessions)
        self._cipher = cipher

    def _open(self, session: AsyncSession) -> None:
        self.received = SqlReceivedEvents(session)
        self.rejections = SqlRejections(session)
        self.mappings = SqlMappings(session)
        self.tenants = SqlTenants(session)
        self.webhook_secrets = SqlWebhookSecrets(session, self._cipher)
        self.api_keys = SqlApiKeys(session)
        self.outbox = SessionOutbox(OUTBOX, session)
