"""Retry pauses and the outage test that decides between "retry later / 503" and "isolate this item"."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy.exc
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from slm_shared.background import Backoff, Supervisor, for_each_isolated, is_unavailable


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = Backoff(initial_seconds=0.5, maximum_seconds=3.0, jitter=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_jitter_keeps_at_least_half_the_step() -> None:
    backoff = Backoff(initial_seconds=2.0, maximum_seconds=2.0, jitter=lambda: 0.0)
    assert backoff.next_delay() == 1.0


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 5432)"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        sqlalchemy.exc.DBAPIError("SELECT 1", {}, ConnectionResetError(104, "reset"), connection_invalidated=True),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, asyncpg.exceptions.ConnectionDoesNotExistError("gone")),
        KafkaConnectionError("no broker"),
    ],
)
def test_a_database_or_broker_that_is_away_is_an_outage(error: Exception) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad period"),
        sqlalchemy.exc.IntegrityError("INSERT", {}, asyncpg.exceptions.UniqueViolationError("duplicate key")),
        FileNotFoundError(2, "No such file"),
    ],
)
def test_bad_data_and_bugs_are_not_outages(error: Exception) -> None:
    assert not is_unavailable(error)


def test_an_outage_wrapped_by_the_caller_is_still_an_outage() -> None:
    error = RuntimeError("pass failed")
    error.__cause__ = ConnectionResetError(104, "reset by peer")
    assert is_unavailable(error)


async def test_one_failing_item_is_counted_and_the_items_after_it_still_run() -> None:
    before = REGISTRY.get_sample_value("slm_background_failures_total", {"task": "unit isolation"}) or 0.0

    async def work(tenant: str) -> str:
        if tenant == "bad":
            raise ValueError("year 1 overflows")
        return tenant.upper()

    assert await for_each_isolated("unit isolation", ["a", "bad", "c"], work) == ["A", "C"]
    assert REGISTRY.get_sample_value("slm_background_failures_total", {"task": "unit isolation"}) == before + 1


async def test_an_outage_ends_the_pass_instead_of_failing_every_remaining_item() -> None:
    done: list[str] = []

    async def work(tenant: str) -> None:
        if tenant == "b":
            raise ConnectionRefusedError(111, "Connect call failed")
        done.append(tenant)

    with pytest.raises(ConnectionRefusedError):
        await for_each_isolated("unit outage", ["a", "b", "c"], work)
    assert done == ["a"]


async def test_a_background_task_that_dies_is_restarted_and_reported_until_it_runs_again() -> None:
    before = REGISTRY.get_sample_value("slm_background_failures_total", {"task": "unit timers"}) or 0.0
    starts: list[int] = []
    running_again = asyncio.Event()
    release = asyncio.Event()

    async def timers() -> None:
        starts.append(len(starts))
        if len(starts) == 1:
            raise ConnectionResetError(104, "the database went away")
        running_again.set()
        await release.wait()

    supervisor = Supervisor(initial_seconds=0.05, maximum_seconds=0.05)
    supervisor.start([("unit timers", timers)])
    await asyncio.sleep(0)  # the first run raises; the supervisor pauses before the restart
    assert supervisor.restarting == {"unit timers"}
    await asyncio.wait_for(running_again.wait(), 5)
    assert supervisor.restarting == set()
    assert supervisor.alive()
    assert REGISTRY.get_sample_value("slm_background_failures_total", {"task": "unit timers"}) == before + 1
    supervisor.stopping()
    release.set()
    await supervisor.wait()
    assert len(starts) == 2  # stopped: the run's return is not restarted


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint"),
    ],
)
def test_a_statement_timeout_or_a_misuse_of_a_connection_is_not_an_outage(error: Exception) -> None:
    # A statement timeout is something one record or request can cause: retried without end it would stall a
    # partition behind a poison record, and it is no reason to answer 503.
    assert not is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.CrashShutdownError("terminating connection because of crash of another server process"),
        asyncpg.exceptions.InternalClientError("connection left mid-operation"),
        sqlalchemy.exc.DisconnectionError("pre-ping failed"),
        sqlalchemy.exc.DBAPIError("COMMIT", {}, asyncpg.exceptions.ConnectionFailureError("connection failure")),
    ],
)
def test_a_server_that_is_full_crashing_or_gone_mid_operation_is_an_outage(error: Exception) -> None:
    assert is_unavailable(error)
