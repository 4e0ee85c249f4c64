"""Intake's composition root: the only place that wires things."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from faststream.kafka import KafkaRouter

from intake import tables
from intake.api import admin_router, events_router
from intake.domain.mapping import SYSTEMS
from intake.handlers.intake import EventIntake
from intake.handlers.purge import Purger
from intake.handlers.replay import Replayer
from intake.unit_of_work import IntakeUnitOfWork
from slm_shared import topics
from slm_shared.ratelimit import RateLimiter
from slm_shared.request_guard import BodyLimits
from slm_shared.runtime import ServiceRuntime
from slm_shared.secret_cipher import SecretCipher
from slm_shared.time_source import Now, utc_now

if TYPE_CHECKING:
    from fastapi import FastAPI

    from intake.settings import IntakeSettings

SERVICE = "intake"
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def ingest_router(runtime: ServiceRuntime, intake: EventIntake, settings: IntakeSettings) -> KafkaRouter:
    router = KafkaRouter()
    runtime.consume(
        router,
        settings.ingest_topic,
        handle=intake.on_ingest_records,
        title="ingest",
        description="CloudEvents published by upstream systems; the tenant is the event's tenantid",
        max_records=runtime.settings.kafka.max_batch_records,
    )

    # Documented in AsyncAPI only: the outbox relay, not these publishers, writes to the topics.
    router.publisher(
        settings.dead_letter_topic,
        title="dead-letters",
        description="invalid ingest records: original bytes, reason in the dlq-* headers",
    )
    router.publisher(
        settings.output_topic(topics.TICKETS), title="tickets", description="itsm.ticket.v1 via the outbox"
    )
    router.publisher(
        settings.output_topic(topics.SIGNALS), title="signals", description="availability, measurement, maintenance"
    )
    router.publisher(
        settings.output_topic(topics.FEEDBACK), title="feedback", description="itsm.feedback.v1 via the outbox"
    )
    return router


def create_app(settings: IntakeSettings, now: Now = utc_now) -> FastAPI:
    runtime = ServiceRuntime(
        service=SERVICE,
        settings=settings,
        alembic_ini=ALEMBIC_INI,
        api_key_table=tables.api_keys,
        set_aside_table=tables.set_aside,
        topics=tuple(
            dict.fromkeys(
                (
                    *topics.ALL_TOPICS,
                    settings.ingest_topic,
                    settings.dead_letter_topic,
                    *(settings.output_topic(topic) for topic in (topics.TICKETS, topics.SIGNALS, topics.FEEDBACK)),
                )
            )
        ),
    )
    sessions, cipher = runtime.sessions, webhook_cipher(settings)

    def units() -> IntakeUnitOfWork:
        return IntakeUnitOfWork(sessions, cipher)

    intake = EventIntake(units, settings, now)
    replayer = Replayer(units, settings.replay_page_size, settings.output_topic_prefix)
    purger = Purger(units, settings, now)
    runtime.add_background(purger.run, purger.stop)
    runtime.broker.include_router(ingest_router(runtime, intake, settings))
    app = runtime.http_app(
        title="intake",
        routers=[
            events_router(intake, units, settings, now),
            admin_router(units, replayer, settings, now),
        ],
        body_limits=BodyLimits(
            settings.max_request_body_bytes,
            {"/v1/events": settings.max_body_bytes, "/v1/webhooks/*": settings.max_body_bytes},
        ),
        # The signed webhooks carry no API key: their signature is checked by the route.
        public_paths=[f"/v1/webhooks/{system}/*" for system in SYSTEMS],
    )
    # One bucket per API key, whatever the scope of the route (`intake.api.common.caller_with`).
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    return app


def webhook_cipher(settings: IntakeSettings) -> SecretCipher:
    keys = settings.webhook_secret_keys
    return SecretCipher(keys.get_secret_value() if keys is not None else None, "INTAKE_WEBHOOK_SECRET_KEYS")
