"""The channels' HTTP/1.1 client (reporting.notifications.http11) against real servers on loopback: a kept-alive
connection is reused, one the server closed while idle is replaced without failing the request, a redirect is not
followed, and a server that never answers is a failure after the timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from reporting.notifications.http11 import Http11Client, HttpFailure, HttpxClient

pytestmark = pytest.mark.integration

Answerer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(answer: Answerer) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw TCP server; yields its base URL and the count of requests read per connection."""
    per_connection: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        per_connection.append(0)
        try:
            await answer(reader, writer)
        finally:
            writer.close()

    running = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = running.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", per_connection
    finally:
        running.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head + await reader.readexactly(length)


def keep_alive(requests: int, status: bytes = b"204 No Content", extra: bytes = b"") -> Answerer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(requests):
            await read_request(reader)
            writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n" + extra + b"\r\n")
            await writer.drain()
        # then the server closes the connection (an idle timeout on its side)

    return answer


async def test_a_kept_alive_connection_is_reused_and_one_closed_while_idle_is_replaced() -> None:
    async with server(keep_alive(2)) as (base, connections):
        client = Http11Client(timeout_seconds=5)
        try:
            answers = [
                await client.post(f"{base}/hook?x=1", b"{}", {"content-type": "application/json"}) for _ in range(3)
            ]
            await asyncio.sleep(0.1)  # the server has closed the first connection after its two requests
            answers.append(await client.post(f"{base}/hook", b"{}", {}))
        finally:
            await client.aclose()
    assert [a.status for a in answers] == [204, 204, 204, 204]
    # Requests 1-2 on the first connection, 3-4 on the second: the closed one was replaced, not reported.
    assert len(connections) == 2


@pytest.mark.parametrize("kind", [Http11Client, HttpxClient])
async def test_a_redirect_is_an_answer_not_followed_and_silence_is_a_failure(
    kind: type[Http11Client | HttpxClient],
) -> None:
    """Both clients (`REPORTING_NOTIFICATION_HTTP_CLIENT`) answer the same way."""
    async with server(keep_alive(1, b"302 Found", b"location: http://elsewhere.invalid/\r\n")) as (base, _):
        client = kind(timeout_seconds=5)
        assert (await client.post(f"{base}/hook", b"{}", {})).status == 302
        await client.aclose()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with server(silent) as (base, _):
        client = kind(timeout_seconds=0.5)
        with pytest.raises(HttpFailure):
            await client.post(f"{base}/hook", b"{}", {})
        await client.aclose()
