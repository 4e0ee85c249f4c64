"""Each service runs as a database role that reads and writes rows but cannot change the schema.

`make up` gives every service database the roles <db>_owner (migrations) and <db>_app (the service); the
services the tests and the demo start connect as <db>_app (scripts.localstack.Stack.service_env).
"""

from __future__ import annotations

import asyncpg
import pytest

from scripts.localstack import SERVICES, Stack
from scripts.processes import ServiceProcess
from slm_shared.outbox import asyncpg_dsn

pytestmark = pytest.mark.integration

SCHEMA_CHANGES = [
    "CREATE TABLE intruder (id int)",
    "ALTER TABLE outbox ADD COLUMN intruder int",
    "DROP TABLE outbox",
    "TRUNCATE outbox",
    "CREATE INDEX intruder ON outbox (topic)",
    "ALTER TABLE api_keys DISABLE TRIGGER ALL",
    "ALTER TABLE api_keys OWNER TO CURRENT_USER",
]


@pytest.fixture(scope="module")
def app_urls(stack: Stack) -> dict[str, str]:
    if set(stack.app_database_urls) != set(SERVICES):
        pytest.skip("the stack has no per-service roles (*_APP_DATABASE_URL is not in .stack/env): run `make up`")
    return stack.app_database_urls


@pytest.mark.parametrize("service", SERVICES)
async def test_the_service_role_reads_and_writes_rows_but_cannot_change_the_schema(
    service: str, app_urls: dict[str, str]
) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(app_urls[service]))
    try:
        assert await connection.fetchval("SELECT current_user") == f"{service.replace('-', '_')}_app"
        assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 1
        async with connection.transaction():
            await connection.execute(
                'INSERT INTO set_aside (consumer_group, topic, partition, "offset", headers, '
                "reason, error_type) VALUES ('roles-test', 't', 0, -1, '[]', 'r', 'e')"
            )
            deleted = await connection.execute("DELETE FROM set_aside WHERE consumer_group = 'roles-test'")
            assert deleted == "DELETE 1"
        for statement in SCHEMA_CHANGES:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await connection.execute(statement)
    finally:
        await connection.close()


def test_the_services_the_tests_start_connect_as_their_own_role(stack: Stack, app_urls: dict[str, str]) -> None:
    for service in SERVICES:
        prefix = service.replace("-", "_").upper()
        assert stack.service_env(service)[f"{prefix}_DATABASE_URL"] == app_urls[service]
    process = ServiceProcess(
        "reporting",
        stack,
        name="reporting-app-role",
        period_close_enabled="false",
        consumer_offset_reset="latest",
        kafka__group_id="reporting-app-role",
    ).start()
    try:
        assert "reporting_app@" in process.env["REPORTING_DATABASE_URL"]
    finally:
        assert process.stop_gracefully()
