"""Reporting's composition root."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from faststream.kafka import KafkaRouter

from reporting import tables
from reporting.api import DASHBOARD_BODY_LIMITS, DASHBOARD_PUBLIC, dashboard_router, report_router
from reporting.browser import SecurityHeaders
from reporting.calendars import subscribe_calendars
from reporting.closing import PeriodCloser
from reporting.domain.notification_sending import Lateness
from reporting.handlers import ReadModels
from reporting.improvement_api import improvements_router
from reporting.notifications.ack_links import AckLinks
from reporting.notifications.api import BODY_LIMITS as NOTIFICATION_BODY_LIMITS
from reporting.notifications.api import PUBLIC_PATHS as NOTIFICATION_PUBLIC
from reporting.notifications.api import notification_router
from reporting.notifications.channels import Senders
from reporting.notifications.delivery import NotificationDelivery
from reporting.notifications.policies import PolicyStore
from reporting.reports import ReportService
from reporting.review_api import reviews_router
from reporting.sessions import SessionPolicy
from reporting.unit_of_work import ReportingUnitOfWork, Units
from slm_shared import topics
from slm_shared.background import PeriodicTask
from slm_shared.key_announcements import subscribe_api_keys
from slm_shared.request_guard import BodyLimits
from slm_shared.runtime import ServiceRuntime
from slm_shared.secret_cipher import SecretCipher
from slm_shared.time_source import Now, utc_now

if TYPE_CHECKING:
    from fastapi import FastAPI

    from reporting.settings import ReportingSettings

SERVICE = "reporting"
SESSION_PURGE_SECONDS = 300.0  # ended sessions are refused at once; the purge only keeps the table small
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"
CONSUMED = {
    topics.CLOCKS: "sla.clock.v1 from the sla-engine",
    topics.TICKETS: "itsm.ticket.v1 snapshots from intake (volumes)",
    topics.FEEDBACK: "itsm.feedback.v1 survey answers from intake (CSAT)",
    topics.SLO_STATUS: "slo.status.v1 evaluations from the sla-engine",
    topics.SLO_ALERTS: "slo.alert.v1 from the sla-engine",
}


def read_model_router(runtime: ServiceRuntime, read_models: ReadModels, settings: ReportingSettings) -> KafkaRouter:
    """One consumer for the five topics: fewer group members, fewer rebalances, one ordered pass per partition."""
    router = KafkaRouter()
    runtime.consume(
        router,
        *CONSUMED,
        handle=read_models.on_records,
        title="read-models",
        description="; ".join(f"{t}: {d}" for t, d in CONSUMED.items()),
        max_records=settings.read_model_batch_records,
        offset_reset=settings.consumer_offset_reset,
    )

    # Documented in AsyncAPI only: the outbox relay, not this publisher, writes to the topic.
    router.publisher(topics.REPORTS, title="reports", description="report.published.v1 via the outbox")
    return router


def add_notification_delivery(
    runtime: ServiceRuntime,
    units: Units,
    policies: PolicyStore,
    settings: ReportingSettings,
    now: Now,
    ack_links: AckLinks,
) -> None:
    """The delivery loop: the kit's periodic task, inside the lifetime of the senders' HTTP client."""
    senders = Senders(settings.notification_timeout_seconds, settings.notification_http_client)
    delivery = NotificationDelivery(units, policies, senders, now, settings, ack_links=ack_links)
    task = PeriodicTask("delivering notifications", settings.notification_poll_seconds, delivery.run_pass)

    async def run() -> None:
        async with senders.open():
            try:
                await task.run()
            finally:
                await delivery.drain()  # the lanes still sending finish before the client closes

    runtime.add_background(run, task.stop, "delivering notifications")


def create_app(settings: ReportingSettings, now: Now = utc_now) -> FastAPI:
    runtime = ServiceRuntime(
        service=SERVICE,
        settings=settings,
        alembic_ini=ALEMBIC_INI,
        api_key_table=tables.api_keys,
        set_aside_table=tables.set_aside,
        topics=topics.ALL_TOPICS,
    )

    def units() -> ReportingUnitOfWork:
        return ReportingUnitOfWork(runtime.sessions)

    closer = PeriodCloser(
        units,
        now,
        interval_seconds=settings.period_close_interval_seconds,
        amendment_quiet_seconds=settings.amendment_quiet_seconds,
        base_url=settings.public_base_url,
    )
    if settings.period_close_enabled:
        runtime.add_background(closer.run, closer.stop)
    read_models = ReadModels(
        units,
        now,
        Lateness(
            late_after=timedelta(seconds=settings.notification_late_after_seconds),
            horizon=timedelta(seconds=settings.notification_max_age_seconds),
            settle=timedelta(seconds=settings.notification_late_settle_seconds),
        ),
    )
    runtime.broker.include_router(read_model_router(runtime, read_models, settings))
    runtime.broker.include_router(subscribe_api_keys(runtime, tables.api_keys, tables.inbox))
    runtime.broker.include_router(subscribe_calendars(runtime, units, now))
    signin_policy = SessionPolicy(
        lifetime=timedelta(seconds=settings.dashboard_session_seconds),
        idle=timedelta(seconds=settings.dashboard_session_idle_seconds),
    )

    async def purge_sessions() -> None:
        async with units() as uow:
            await uow.signins.purge(now(), signin_policy)
            await uow.commit()

    runtime.add_periodic("purging dashboard sessions", SESSION_PURGE_SECONDS, purge_sessions)
    keys = settings.notification_secret_keys.get_secret_value() if settings.notification_secret_keys else None
    policies = PolicyStore(SecretCipher(keys, "REPORTING_NOTIFICATION_SECRET_KEYS"))
    ack_links = AckLinks(keys, settings.public_base_url)
    if settings.notifications_enabled:
        add_notification_delivery(runtime, units, policies, settings, now, ack_links)
    reports = ReportService(runtime.sessions, now)
    app = runtime.http_app(
        title="reporting",
        routers=[
            report_router(reports, settings, now, closer),
            improvements_router(units, now),
            reviews_router(units, now),
            dashboard_router(reports, runtime.authenticator, settings, now, units, signin_policy),
            notification_router(units, policies, now, ack_links),
        ],
        body_limits=BodyLimits(settings.max_request_body_bytes, {**DASHBOARD_BODY_LIMITS, **NOTIFICATION_BODY_LIMITS}),
        public_paths=DASHBOARD_PUBLIC | NOTIFICATION_PUBLIC,
    )
    app.add_middleware(SecurityHeaders)
    return app
