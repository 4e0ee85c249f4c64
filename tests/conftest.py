"""Session fixtures shared by integration and end-to-end tests: the real stack and tenants with keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.localstack import Stack, discover, docker_answers


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    found = discover()
    if found is not None:
        yield found
        return
    if docker_answers():
        from tests.support.containers import container_stack

        with container_stack() as started:
            yield started
        return
    pytest.fail(
        "no Kafka/PostgreSQL found: run `make up` first (or export KAFKA_BOOTSTRAP_SERVERS and "
        "the *_DATABASE_URL variables)",
        pytrace=False,
    )
