"""`slm_consumer_lag` against the real broker: end offsets minus the group's commits, per topic."""

from __future__ import annotations

import asyncio
import gc
import socket
import uuid
import warnings

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import REGISTRY

from scripts.localstack import Stack
from slm_shared.consumer_lag import ConsumerLagMonitor

pytestmark = pytest.mark.integration


async def test_lag_is_what_the_group_has_not_committed_counting_uncommitted_partitions_whole(stack: Stack) -> None:
    options = {"bootstrap_servers": stack.kafka_bootstrap}
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"lag-group-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(**options)
    await producer.start()
    for partition, count in ((0, 5), (1, 3)):
        for n in range(count):
            await producer.send_and_wait(topic, f"r{n}".encode(), partition=partition)
    await producer.stop()
    # The group has done 2 of partition 0's 5 records and nothing of partition 1.
    consumer = AIOKafkaConsumer(**options, group_id=group, enable_auto_commit=False)
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "")})
    await consumer.stop()

    monitor = ConsumerLagMonitor(options, {group: [topic]}, client_id="test")
    lag = await monitor.measure()

    assert lag == {(group, topic): (5 - 2) + 3}
    assert REGISTRY.get_sample_value("slm_consumer_lag", {"group": group, "topic": topic}) == 6


async def test_a_measurement_that_cannot_reach_the_broker_leaves_no_client_open() -> None:
    """During a broker outage every measurement fails; each must release its clients, not leak one a pass."""
    with socket.socket() as probe:  # a port nobody listens on: the broker is down
        probe.bind(("127.0.0.1", 0))
        unreachable = f"127.0.0.1:{probe.getsockname()[1]}"
    leaks: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: leaks.append(str(context.get("message"))))
    monitor = ConsumerLagMonitor(
        {"bootstrap_servers": unreachable, "request_timeout_ms": 2000}, {"some-group": ["some-topic"]}, client_id="test"
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            for _ in range(3):
                with pytest.raises(KafkaConnectionError):
                    await monitor.measure()
            gc.collect()
    finally:
        loop.set_exception_handler(None)
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert [m for m in unclosed + leaks if "AIOKafka" in m] == []
