"""The API keys intake announces, as every other service keeps them: a subscriber of `itsm.tenants.v1` that
verifies each announcement's signature and stores the key, once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from faststream.kafka import KafkaRouter
from prometheus_client import Counter

from slm_shared import topics
from slm_shared.auth import store_key
from slm_shared.consumer import parse_batch
from slm_shared.events import API_KEY_EVENT, ApiKeyData
from slm_shared.inbox import Inbox
from slm_shared.signing import AnnouncementVerifier

if TYPE_CHECKING:
    from collections.abc import Sequence

    import sqlalchemy as sa
    from aiokafka.structs import ConsumerRecord

    from slm_shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

KEY_ANNOUNCEMENTS = Counter(
    "slm_key_announcements_total",
    "API key announcements consumed, by outcome "
    "(stored, or rejected: unsigned or with a signature no public key verifies)",
    ["outcome"],
)


def subscribe_api_keys(runtime: ServiceRuntime, api_key_table: sa.Table, inbox_table: sa.Table) -> KafkaRouter:
    """Keep this service's copy of the API keys intake announces on `itsm.tenants.v1`.

    Idempotent: the inbox rows and the key upserts of a batch share one transaction; a revocation is never
    undone. Only announcements signed by intake count (`slm_shared.signing`): one without a valid signature is
    `ignored`, logged and counted in `slm_key_announcements_total{outcome="rejected"}`. Other event types on
    the topic are `ignored`; a key event that cannot be stored is set aside by the pipeline, so neither stops
    the keys behind it.
    """
    router = KafkaRouter()
    inbox = Inbox(inbox_table, f"{runtime.service}.api-keys")
    verifier = AnnouncementVerifier(runtime.settings.key_announcement_public_keys)
    if not verifier.configured:
        log.warning("no key announcement public key is set: every API key announcement will be ignored")

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[str]:
        batch = parse_batch(records, {API_KEY_EVENT})
        if not batch.events:
            return batch.outcomes
        async with runtime.sessions() as session, session.begin():
            # Verified before the inbox sees them: a forged record must not take the id of a genuine one to
            # come (`<key_id>-revoked`) and have the genuine announcement dropped as its duplicate.
            verified: dict[int, ApiKeyData] = {}
            for event in batch.events:
                announced = ApiKeyData.model_validate(event.data)
                if verifier.verify(announced):
                    verified[id(event)] = announced
                    continue
                KEY_ANNOUNCEMENTS.labels("rejected").inc()
                log.warning(
                    "ignored an API key announcement without a valid signature: event %s, key %s, tenant %s",
                    event.id,
                    announced.key_id,
                    announced.tenant_id,
                )
            fresh = await inbox.first_deliveries(session, [e for e in batch.events if id(e) in verified])
            for event in fresh:
                await store_key(session, api_key_table, verified[id(event)], event.time)
                KEY_ANNOUNCEMENTS.labels("stored").inc()
        outcomes = list(batch.mark_duplicates(fresh))
        for event, position in zip(batch.events, batch.positions, strict=True):
            if id(event) not in verified:
                outcomes[position] = "ignored"
        return outcomes

    # A group of its own: sharing the main consumers' group made every start (and every restart after a crash)
    # a rebalance of both, the main consumer waiting for this one's join or dead session.
    runtime.consume(
        router,
        topics.TENANTS,
        handle=handle,
        group_id=f"{runtime.group_id}-api-keys",
        title="api-keys",
        description="API key announcements from intake",
    )
    return router
