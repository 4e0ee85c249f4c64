"""Intake's handlers driven through fakes of their ports (cosmicpython's test_handlers): what a batch commits,
what reaches the outbox, what a redelivery does, what an error leaves behind. No database, no broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from intake.handlers.intake import EventIntake
from intake.handlers.keys import KeyAdmin
from intake.handlers.purge import Purger
from intake.handlers.replay import Replayer
from intake.keys import UnknownKey
from intake.settings import IntakeSettings
from slm_shared import topics
from slm_shared.auth import hash_key
from slm_shared.outbox import OutgoingEvent, OutgoingRecord
from tests.support.events import ticket_event
from tests.unit.intake.fakes import FakeStore, canonical_of

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
DLQ = "test.ingest.dlq"
SETTINGS = IntakeSettings(
    database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
    output_topic_prefix="",
    dead_letter_topic=DLQ,
    archive_retention_days=90,
    dedup_retention_days=400,
    rejected_retention_days=30,
)


def intake_of(store: FakeStore) -> EventIntake:
    return EventIntake(store.unit, SETTINGS, now=lambda: NOW)


def sent(*documents: dict[str, Any]) -> list[tuple[Any, bytes | None]]:
    return [(document, json.dumps(document).encode()) for document in documents]


def without_tenant(document: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in document.items() if name != "tenantid"}


def record(value: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topics.INGEST, 0, offset, 0, 0, None, value, None, 0, len(value), [])


def events_in(outbox: list[OutgoingEvent | OutgoingRecord]) -> list[OutgoingEvent]:
    return [item for item in outbox if isinstance(item, OutgoingEvent)]


async def test_an_accepted_batch_puts_its_normalised_events_in_the_outbox_and_commits_once() -> None:
    store = FakeStore()
    first = ticket_event("t1", "INC-1", NOW - timedelta(hours=2), event_id="e1")
    second = ticket_event("t1", "INC-2", NOW - timedelta(hours=1), event_id="e2")

    results = await intake_of(store).accept_batch("t1", sent(without_tenant(first), without_tenant(second)))

    assert [(result.outcome, result.id) for result in results] == [("accepted", "e1"), ("accepted", "e2")]
    assert store.committed == [True]
    outgoing = events_in(store.state.outbox)
    assert [(item.topic, item.key) for item in outgoing] == [(topics.TICKETS, "t1/INC-1"), (topics.TICKETS, "t1/INC-2")]
    # Normalised: the tenant the API key names is written into the events that left it out.
    assert [canonical_of(item)["tenantid"] for item in outgoing] == ["t1", "t1"]
    assert set(store.state.ledger) == {("t1", "test://helpdesk", "e1"), ("t1", "test://helpdesk", "e2")}


async def test_a_redelivered_batch_is_duplicate_and_publishes_nothing_more() -> None:
    store = FakeStore()
    batch = sent(
        ticket_event("t1", "INC-1", NOW - timedelta(hours=1), event_id="e1"),
        ticket_event("t1", "INC-1", NOW, action="updated", event_id="e2"),
    )
    await intake_of(store).accept_batch("t1", batch)

    again = await intake_of(store).accept_batch("t1", batch)

    assert [result.outcome for result in again] == ["duplicate", "duplicate"]
    assert len(events_in(store.state.outbox)) == 2
    assert len(store.state.ledger) == 2


async def test_the_same_event_twice_in_one_batch_is_accepted_once() -> None:
    store = FakeStore()
    event = ticket_event("t1", "INC-1", NOW - timedelta(hours=1), event_id="e1")

    results = await intake_of(store).accept_batch("t1", sent(event, event))

    assert [result.outcome for result in results] == ["accepted", "duplicate"]
    assert len(events_in(store.state.outbox)) == 1


async def test_an_event_naming_another_tenant_is_rejected_and_recorded_beside_the_accepted_one() -> None:
    store = FakeStore()
    good = ticket_event("t1", "INC-1", NOW - timedelta(hours=1), event_id="good")
    foreign = ticket_event("t2", "INC-9", NOW - timedelta(hours=1), event_id="foreign")

    results = await intake_of(store).accept_batch("t1", sent(good, foreign))

    assert [(result.outcome, result.code) for result in results] == [
        ("accepted", None),
        ("rejected", "tenant_mismatch"),
    ]
    assert [canonical_of(item)["id"] for item in events_in(store.state.outbox)] == ["good"]
    assert [
        (stored.channel, stored.rejection.code, stored.rejection.event_id, stored.rejection.tenant_id)
        for stored in store.state.rejections
    ] == [("http", "tenant_mismatch", "foreign", "t1")]


async def test_refused_ingest_records_go_to_the_dead_letters_with_their_bytes_and_reason() -> None:
    store = FakeStore()
    store.state.active_tenants = {"t1"}
    good = json.dumps(ticket_event("t1", "INC-1", NOW - timedelta(hours=1), event_id="good")).encode()
    broken = b'{"specversion": "1.0", '
    stranger = json.dumps(ticket_event("nobody", "INC-2", NOW - timedelta(hours=1), event_id="stray")).encode()

    outcomes = await intake_of(store).on_ingest_records([record(good, 10), record(broken, 11), record(stranger, 12)])

    assert outcomes == ["accepted", "rejected", "rejected"]
    assert [canonical_of(item)["id"] for item in events_in(store.state.outbox)] == ["good"]
    dead = [item for item in store.state.outbox if isinstance(item, OutgoingRecord)]
    assert [(item.topic, item.payload) for item in dead] == [(DLQ, broken), (DLQ, stranger)]
    assert [(item.headers or {})["dlq-code"] for item in dead] == ["malformed_json", "unknown_tenant"]
    assert [(item.headers or {})["dlq-offset"] for item in dead] == ["11", "12"]
    assert [(stored.channel, stored.rejection.code) for stored in store.state.rejections] == [
        ("kafka", "malformed_json"),
        ("kafka", "unknown_tenant"),
    ]
    # The batch, then the late rejects (a tenant unknown once the ledger is asked) in a transaction of their own.
    assert store.committed == [True, True]


async def test_an_error_while_storing_keeps_nothing_of_the_batch() -> None:
    store = FakeStore()
    store.outbox_failure = RuntimeError("the outbox is away")

    with pytest.raises(RuntimeError, match="the outbox is away"):
        await intake_of(store).accept_batch("t1", sent(ticket_event("t1", "INC-1", NOW, event_id="e1")))

    assert store.committed == [False]
    assert store.state.ledger == {}
    assert store.state.outbox == []


async def test_a_replay_republishes_the_tenants_archive_of_the_range_in_event_time_order() -> None:
    store = FakeStore()
    start = NOW - timedelta(days=1)
    await intake_of(store).accept_batch(
        "t1",
        sent(
            ticket_event("t1", "INC-3", start + timedelta(hours=3), event_id="third"),
            ticket_event("t1", "INC-1", start + timedelta(hours=1), event_id="first"),
            ticket_event("t1", "INC-2", start + timedelta(hours=2), event_id="second"),
            ticket_event("t1", "INC-0", start - timedelta(hours=1), event_id="before the range"),
        ),
    )
    await intake_of(store).accept_batch("t2", sent(ticket_event("t2", "INC-1", start + timedelta(hours=1))))
    published_before = len(store.state.outbox)
    replayer = Replayer(store.unit, page_size=2)

    summary = await replayer.replay("t1", start, NOW)

    replayed = events_in(store.state.outbox[published_before:])
    assert (summary.events, summary.skipped) == (3, 0)
    assert [canonical_of(item)["id"] for item in replayed] == ["first", "second", "third"]
    assert {(item.headers or {})["slm-replay"] for item in replayed} == {summary.replay_id}
    assert store.committed[-2:] == [True, True]  # pages of 2 and 1 events


async def test_a_purge_clears_old_payloads_and_rejections_but_keeps_the_dedup_keys() -> None:
    store = FakeStore(received_at=NOW - timedelta(days=100))  # past the archive (90 d) and rejection (30 d) ages
    old = ticket_event("t1", "INC-1", NOW - timedelta(days=101), event_id="old")
    await intake_of(store).accept_batch("t1", sent(old, ticket_event("t2", "INC-1", NOW, event_id="foreign")))
    store.received_at = NOW

    totals = await Purger(store.unit, SETTINGS, now=lambda: NOW).purge("t1")

    assert totals == {"archive_cleared": 1, "dedup_forgotten": 0, "rejections_dropped": 1}
    assert store.state.ledger[("t1", "test://helpdesk", "old")].canonical is None
    assert [result.outcome for result in await intake_of(store).accept_batch("t1", sent(old))] == ["duplicate"]


async def test_the_retention_pass_forgets_signed_deliveries_older_than_twice_the_replay_window() -> None:
    store = FakeStore()
    settings = SETTINGS.model_copy(
        update={"webhook_delivery_retention_days": 1, "webhook_replay_window_seconds": 86400}
    )
    async with store.unit() as uow:  # kept 2 days (twice the window), not 1 (the retention)
        await uow.webhook_secrets.remember("t1", "jira", "older", NOW - timedelta(days=2, seconds=1))
        await uow.webhook_secrets.remember("t1", "jira", "younger", NOW - timedelta(days=1, hours=23))
        await uow.commit()

    forgotten = await Purger(store.unit, settings, now=lambda: NOW).forget_webhook_deliveries()

    assert forgotten == 1
    assert set(store.state.webhook_deliveries) == {("t1", "jira", "younger")}


def key_admin_of(store: FakeStore) -> KeyAdmin:
    return KeyAdmin(store.unit, now=lambda: NOW)


def announced(store: FakeStore) -> list[tuple[str, str, str, object]]:
    """(topic, record key, event id, announced status) of each announcement in the outbox."""
    return [(i.topic, i.key, i.event.id, i.event.data["status"]) for i in events_in(store.state.outbox)]


async def test_a_new_key_is_stored_hashed_and_announced_in_one_transaction() -> None:
    store = FakeStore()

    issued = await key_admin_of(store).create("acme", ("ingest",))

    assert store.committed == [True]
    stored = store.state.api_keys[issued.key_id]
    assert (stored.tenant_id, stored.status, stored.scopes) == ("acme", "active", ("ingest",))
    assert stored.key_hash == hash_key(issued.plaintext) != issued.plaintext
    key = f"acme/{issued.key_id}"
    assert announced(store) == [(topics.TENANTS, key, f"{issued.key_id}-active", "active")]


async def test_a_tenant_id_with_a_slash_is_refused_before_any_transaction() -> None:
    store = FakeStore()

    with pytest.raises(ValueError, match="tenant id"):
        await key_admin_of(store).create("acme/eu")

    assert store.units == []


async def test_a_rotation_revokes_the_old_key_and_keeps_its_scopes_in_the_same_transaction() -> None:
    store = FakeStore()
    admin = key_admin_of(store)
    old = await admin.create("acme", ("read", "config"))

    new = await admin.rotate(old.key_id)

    assert store.committed == [True, True]
    keys = store.state.api_keys
    assert (keys[old.key_id].status, keys[new.key_id].status) == ("revoked", "active")
    assert keys[new.key_id].scopes == ("read", "config")
    assert new.tenant_id == "acme"
    assert [(event_id, status) for _, _, event_id, status in announced(store)] == [
        (f"{old.key_id}-active", "active"),
        (f"{new.key_id}-active", "active"),
        (f"{old.key_id}-revoked", "revoked"),
    ]


async def test_rotating_or_revoking_an_unknown_key_commits_nothing() -> None:
    store = FakeStore()
    admin = key_admin_of(store)

    with pytest.raises(UnknownKey):
        await admin.rotate("0123456789ab")
    with pytest.raises(UnknownKey):
        await admin.revoke("0123456789ab")

    assert store.committed == [False, False]
    assert store.state.api_keys == {}
    assert store.state.outbox == []


async def test_a_reannouncement_gives_every_key_an_event_id_of_its_own() -> None:
    store = FakeStore()
    admin = key_admin_of(store)
    kept = await admin.create("acme")
    gone = await admin.create("globex")
    await admin.revoke(gone.key_id)

    assert await admin.reannounce() == 2

    # NOW is 2026-12-01 12:00:00 UTC: the suffix keeps the other services' inboxes from dropping it.
    again = announced(store)[3:]
    assert sorted(again, key=lambda a: a[2]) == sorted(
        [
            (topics.TENANTS, f"acme/{kept.key_id}", f"{kept.key_id}-active-20261201T120000000000", "active"),
            (topics.TENANTS, f"globex/{gone.key_id}", f"{gone.key_id}-revoked-20261201T120000000000", "revoked"),
        ],
        key=lambda a: a[2],
    )


async def test_the_key_list_is_one_tenants_by_key_id() -> None:
    store = FakeStore()
    admin = key_admin_of(store)
    first, second = await admin.create("acme"), await admin.create("acme")
    await admin.create("globex")

    listed = await admin.list("acme")

    assert [key.key_id for key in listed] == sorted([first.key_id, second.key_id])
    assert {key.tenant_id for key in listed} == {"acme"}
