"""`slm_consumer_rebalances_total` and `slm_consumer_commit_failures_total` against the real broker."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError
from prometheus_client import REGISTRY

from scripts.localstack import Stack
from slm_shared.rebalances import RebalanceCounter, count_commit_failures

pytestmark = pytest.mark.integration


def rebalances(group: str) -> float | None:
    return REGISTRY.get_sample_value("slm_consumer_rebalances_total", {"group": group})


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while True:
            if condition():
                return
            await asyncio.sleep(0.1)


async def test_joining_is_not_a_rebalance_and_a_second_member_joining_is(stack: Stack) -> None:
    options = {"bootstrap_servers": stack.kafka_bootstrap}
    topic, group = f"rebalance-{uuid.uuid4().hex[:8]}", f"rebalance-group-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    await admin.close()
    first_listener, second_listener = RebalanceCounter(group), RebalanceCounter(group)
    first = AIOKafkaConsumer(**options, group_id=group, enable_auto_commit=False)
    first.subscribe([topic], listener=first_listener)
    await first.start()
    polling = asyncio.create_task(first.getmany(timeout_ms=60_000))
    try:
        await until(lambda: first_listener.assignments == 1)
        assert rebalances(group) == 0

        second = AIOKafkaConsumer(**options, group_id=group, enable_auto_commit=False)
        second.subscribe([topic], listener=second_listener)
        await second.start()
        second_polling = asyncio.create_task(second.getmany(timeout_ms=60_000))
        try:
            await until(lambda: first_listener.assignments == 2 and second_listener.assignments == 1)
        finally:
            second_polling.cancel()
            await second.stop()
    finally:
        polling.cancel()
        await first.stop()

    assert first_listener.rebalances == 1
    assert second_listener.rebalances == 0
    assert rebalances(group) == 1


def test_a_refused_commit_logged_by_the_broker_is_counted_and_other_errors_are_not() -> None:
    logger = logging.getLogger(f"test-broker-{uuid.uuid4().hex[:8]}")
    group = f"commit-group-{uuid.uuid4().hex[:8]}"
    count_commit_failures(logger, group)
    count_commit_failures(logger, group)  # attached once however often it is called

    def failures() -> float | None:
        return REGISTRY.get_sample_value("slm_consumer_commit_failures_total", {"group": group})

    assert failures() == 0
    try:
        raise CommitFailedError("the member was expelled")
    except CommitFailedError as error:
        logger.critical(repr(error), exc_info=error)
    try:
        raise ValueError("not a commit")
    except ValueError as error:
        logger.critical(repr(error), exc_info=error)
    assert failures() == 1
