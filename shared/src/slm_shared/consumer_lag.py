"""The `slm_consumer_lag` gauge: records on each topic a consumer group of this service has not committed yet.

Read from the broker every interval by `ServiceRuntime` (the group's committed offsets against the partitions'
end offsets), the same figure KEDA scales on, so a service reports its own lag without a Kafka Exporter. Every
replica reports the same numbers (take `max` across pods); a partition with no commit yet counts from its
beginning.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from prometheus_client import Gauge

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

CONSUMER_LAG = Gauge("slm_consumer_lag", "Records not yet committed by a consumer group, per topic", ["group", "topic"])


class ConsumerLagMonitor:
    def __init__(self, client_options: Mapping[str, Any], groups: Mapping[str, Sequence[str]], client_id: str) -> None:
        """`groups`: each consumer group of the service and the topics it subscribes to."""
        self._options = dict(client_options)
        self._groups = {group: tuple(topic_names) for group, topic_names in groups.items()}
        self._client_id = client_id

    async def measure(self) -> dict[tuple[str, str], int]:
        """Lag per (group, topic) now, also set on the gauge."""
        async with contextlib.AsyncExitStack() as clients:
            # Each client is closed even when its own start fails (a broker outage): a client whose start
            # raised still holds its connections and metadata task until closed.
            admin = AIOKafkaAdminClient(**self._options, client_id=f"{self._client_id}-lag")
            clients.push_async_callback(admin.close)
            await admin.start()
            offsets = AIOKafkaConsumer(**self._options, client_id=f"{self._client_id}-lag", enable_auto_commit=False)
            clients.push_async_callback(offsets.stop)
            await offsets.start()
            return await self._measure(admin, offsets)

    async def _measure(self, admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer) -> dict[tuple[str, str], int]:
        described = await admin.describe_topics(sorted({t for names in self._groups.values() for t in names}))
        partitions_of = {item["topic"]: sorted(p["partition"] for p in item["partitions"]) for item in described}
        lag: dict[tuple[str, str], int] = {}
        for group, topic_names in self._groups.items():
            partitions = [TopicPartition(topic, p) for topic in topic_names for p in partitions_of.get(topic, ())]
            if not partitions:
                continue
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            ends = await offsets.end_offsets(partitions)
            beginnings = await offsets.beginning_offsets(partitions)
            for partition in partitions:
                done = committed.get(partition)
                position = done.offset if done is not None and done.offset >= 0 else beginnings[partition]
                key = (group, partition.topic)
                lag[key] = lag.get(key, 0) + max(0, ends[partition] - position)
        for (group, topic), value in lag.items():
            CONSUMER_LAG.labels(group, topic).set(value)
        return lag
