"""Reporting's unit of work: one transaction and the repositories that work in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from reporting import tables
from reporting.improvements import SqlImprovementRegister
from reporting.notifications.deliveries import SqlDeliveryRepository
from reporting.notifications.planning import SqlNotificationPlanner
from reporting.notifications.policies import SqlPolicyRepository
from reporting.period_closes import SqlPeriodCloseRepository
from reporting.read_side.config import SqlConfigReader
from reporting.read_side.snapshots import begin_read_only
from reporting.repository import SqlReadModelRepository
from reporting.review_packs import SqlReviewRepository
from reporting.sessions import SqlDashboardSessions
from slm_shared.inbox import Inbox
from slm_shared.outbox import Outbox
from slm_shared.unit_of_work import SessionInbox, SessionOutbox, SqlUnitOfWork

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

READ_MODEL_INBOX = Inbox(tables.inbox, "reporting.read-models")
CALENDAR_INBOX = Inbox(tables.inbox, "reporting.calendars")
OUTBOX = Outbox(tables.outbox)


class ReportingUnitOfWork(SqlUnitOfWork):
    """Every repository of reporting's writing side: the read models, the notifications planned with them, the
    notification policies and deliveries, the period close's rows, the improvement register, the review packs and
    complaint handling, the tenants' configuration, the dashboard's sign-ins, the inboxes of the read-model and
    calendar consumers and the outbox (reports published)."""

    inbox: SessionInbox
    calendar_inbox: SessionInbox
    outbox: SessionOutbox
    read_models: SqlReadModelRepository
    notifications: SqlNotificationPlanner
    policies: SqlPolicyRepository
    deliveries: SqlDeliveryRepository
    closes: SqlPeriodCloseRepository
    signins: SqlDashboardSessions
    improvements: SqlImprovementRegister
    reviews: SqlReviewRepository
    configs: SqlConfigReader

    def _open(self, session: AsyncSession) -> None:
        self.inbox = SessionInbox(READ_MODEL_INBOX, session)
        self.calendar_inbox = SessionInbox(CALENDAR_INBOX, session)
        self.outbox = SessionOutbox(OUTBOX, session)
        self.read_models = SqlReadModelRepository(session)
        self.notifications = SqlNotificationPlanner(session)
        self.policies = SqlPolicyRepository(session)
        self.deliveries = SqlDeliveryRepository(session)
        self.closes = SqlPeriodCloseRepository(session)
        self.signins = SqlDashboardSessions(session)
        self.improvements = SqlImprovementRegister(session)
        self.reviews = SqlReviewRepository(session)
        self.configs = SqlConfigReader(session)

    async def read_only(self) -> None:
        """Read in one REPEATABLE READ, READ ONLY snapshot, as `read_side.snapshots.read_only` does: call before
        the unit's first statement (its sections must agree with one another)."""
        await begin_read_only(self.session)


Units = Callable[[], ReportingUnitOfWork]
