"""The laptop path: Kafka and PostgreSQL in testcontainers, migrated, when a Docker engine answers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from scripts.localstack import REPO, SERVICES, Stack, generated_secrets


@contextmanager
def container_stack() -> Iterator[Stack]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        PostgresContainer("postgres:16", driver="asyncpg") as postgres,
    ):
        base = postgres.get_connection_url().rsplit("/", 1)[0]
        admin = base.replace("+asyncpg", "")
        urls = {}
        for service in SERVICES:
            name = service.replace("-", "_")
            subprocess.run(["psql", admin + "/postgres", "-c", f"CREATE DATABASE {name}"], check=False)
            urls[service] = f"{base}/{name}"
        found = Stack(kafka.get_bootstrap_server(), urls, generated_secrets())
        for service in SERVICES:
            subprocess.run(
                ["uv", "run", "alembic", "-c", str(REPO / "services" / service / "alembic.ini"), "upgrade", "head"],
                check=True,
                env={**os.environ, **found.service_env(service)},
            )
        yield found
