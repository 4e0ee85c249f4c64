"""The request guard checks the API key before a route runs, outside the app's exception handlers: a key
that cannot be checked because PostgreSQL is unreachable must answer 503 with `Retry-After` (upstream
senders retry those), not the bare 500 the server answers for an exception a middleware lets through."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from scripts.localstack import Stack
from scripts.processes import free_port
from slm_shared.auth import ApiKeyAuthenticator, define_api_key_table, issue_key
from slm_shared.db import create_engine, session_factory
from slm_shared.request_guard import BodyLimits, install

pytestmark = pytest.mark.integration

API_KEYS = define_api_key_table(sa.MetaData())


async def answer_to_a_post(database_url: str) -> httpx.Response:
    engine = create_engine(database_url, pool_size=1)
    app = FastAPI()
    install(
        app,
        limits=BodyLimits(),
        authenticator=ApiKeyAuthenticator(API_KEYS, session_factory(engine)),
        public_paths=frozenset(),
    )

    @app.post("/v1/events")
    async def accept() -> dict[str, str]:
        return {"result": "accepted"}

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guard.test") as client:
            return await client.post(
                "/v1/events", json={"id": "1"}, headers={"Authorization": f"Bearer {issue_key('acme').plaintext}"}
            )
    finally:
        await engine.dispose()


@pytest.fixture
def unreachable_database(stack: Stack) -> str:
    """The intake database's URL with a port nothing listens on: connections are refused, as while the
    server is down."""
    url = sa.engine.make_url(stack.database_urls["intake"]).set(port=free_port())
    return url.render_as_string(hide_password=False)


async def test_a_key_that_cannot_be_checked_while_postgres_is_away_answers_503_with_retry_after(
    unreachable_database: str,
) -> None:
    answer = await answer_to_a_post(unreachable_database)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0


async def test_with_postgres_up_the_same_unknown_key_is_a_401(stack: Stack) -> None:
    answer = await answer_to_a_post(stack.database_urls["intake"])
    assert answer.status_code == 401, answer.text
