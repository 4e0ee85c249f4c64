"""Counting consumer-group rebalances and refused offset commits, the symptoms of a starved event loop.

A consumer whose event loop is blocked longer than `session_timeout_ms` misses its heartbeats: the broker
expels it, the group rebalances, its next offset commit fails with `CommitFailedError`, and the batch it had
processed is delivered again. Both counters should stay at 0 in steady state (docs/operations.md).

- `RebalanceCounter` is an aiokafka `ConsumerRebalanceListener` for one subscriber (pass it as the
  subscriber's `listener=`): every partition assignment after the first one is a rebalance.
- `CommitFailureCounter` is a logging handler for the broker's logger: FastStream's acknowledgement
  middleware logs a failed commit (with the exception) instead of raising it, so that is where it surfaces.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalGenerationError, RebalanceInProgressError, UnknownMemberIdError
from prometheus_client import Counter

if TYPE_CHECKING:
    from aiokafka.structs import TopicPartition

REBALANCES = Counter(
    "slm_consumer_rebalances_total",
    "Partition reassignments of a running consumer (after its first assignment)",
    ["group"],
)
COMMIT_FAILURES = Counter(
    "slm_consumer_commit_failures_total",
    "Offset commits the broker refused because the member had left the group (the batch is delivered again)",
    ["group"],
)
# The errors a commit raises when the member lost its place in the group (session expired, rebalance).
_COMMIT_REFUSALS = (CommitFailedError, IllegalGenerationError, RebalanceInProgressError, UnknownMemberIdError)


class RebalanceCounter(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    """One subscriber's rebalances: its first assignment is joining, every later one a rebalance."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.assignments = 0
        REBALANCES.labels(group).inc(0)  # the series exists (reads 0) before the first rebalance

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Nothing to do: the next assignment counts the rebalance, whether or not partitions were held."""

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assignments += 1
        if self.assignments > 1:
            REBALANCES.labels(self.group).inc()

    @property
    def rebalances(self) -> int:
        return max(0, self.assignments - 1)


class CommitFailureCounter(logging.Handler):
    """Counts the refused commits logged on the logger it is attached to (the service's broker logger)."""

    def __init__(self, default_group: str) -> None:
        super().__init__(level=logging.ERROR)
        self._default_group = default_group
        COMMIT_FAILURES.labels(default_group).inc(0)

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, _COMMIT_REFUSALS):
            COMMIT_FAILURES.labels(str(getattr(record, "group_id", "") or self._default_group)).inc()


def count_commit_failures(logger: logging.Logger, default_group: str) -> CommitFailureCounter:
    """Attach a `CommitFailureCounter` to `logger` once (a second call returns the one attached)."""
    for handler in logger.handlers:
        if isinstance(handler, CommitFailureCounter):
            return handler
    handler = CommitFailureCounter(default_group)
    logger.addHandler(handler)
    return handler
