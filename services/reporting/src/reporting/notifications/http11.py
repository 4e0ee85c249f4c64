"""The notification channels' HTTP clients. `Http11Client`, the default: h11 (the parser httpx itself uses)
over asyncio streams, keep-alive connections pooled per origin, each request written in one piece.
`HttpxClient`: httpx, for a deployment that needs what the lean one leaves out (`REPORTING_NOTIFICATION_HTTP_CLIENT
=httpx`: proxies from the environment, HTTP/2 never, redirects still not followed).

Why not httpx here: posting a notification cost httpx about 1 ms of CPU on this machine (its transport layers,
anyio, a write for the headers and another for the body), h11 alone about 0.2 ms (bench/notifications and the
profile in docs/notifications.md); the delivery loop is CPU-bound on it. What it does not do, on purpose: follow
redirects (a 3xx is a failure, as before), HTTP/2, proxies from the environment, cookies.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
import httpx

MAX_KEPT_BODY = 4096  # of a response: enough for the error text a failure logs
IDLE_PER_ORIGIN = 32


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class HttpFailure(Exception):
    """The request got no complete answer: refused, reset, timed out, or not HTTP."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        self.writer.close()


class Http11Client:
    """`post(url, body, headers)` -> `Answer`; a request runs on an idle kept-alive connection of its origin
    or a new one. A kept-alive connection the server closed meanwhile fails before any answer: the request is
    then tried once more on a new connection (nothing was processed)."""

    def __init__(self, timeout_seconds: float, user_agent: str = "slm-reporting") -> None:
        self._timeout = timeout_seconds
        self._user_agent = user_agent
        self._idle: dict[tuple[str, str, int], list[_Connection]] = defaultdict(list)
        self._tls = ssl.create_default_context()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpFailure(f"not an http(s) URL: {url[:100]}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = (parts.scheme, parts.hostname, port)
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = [
            ("host", host),
            ("user-agent", self._user_agent),
            ("content-length", str(len(body))),
            *((name, value) for name, value in headers.items() if name.lower() != "content-length"),
        ]
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    connection, reused = await self._connection(origin)
                    try:
                        answer = await self._exchange(connection, target, request, body)
                    except (OSError, h11.ProtocolError, asyncio.IncompleteReadError, HttpFailure) as error:
                        connection.close()
                        if reused and isinstance(error, ConnectionError | asyncio.IncompleteReadError | HttpFailure):
                            continue  # the server closed the idle connection: a new one, once per idle one
                        raise HttpFailure(f"{type(error).__name__}: {error}") from error
                    except BaseException:
                        connection.close()  # cancelled or timed out mid-exchange: the connection's state is unknown
                        raise
                    self._release(origin, connection)
                    return answer
        except TimeoutError as error:
            raise HttpFailure(f"no answer within {self._timeout} s") from error
        except OSError as error:
            raise HttpFailure(f"{type(error).__name__}: {error}") from error

    async def _connection(self, origin: tuple[str, str, int]) -> tuple[_Connection, bool]:
        idle = self._idle[origin]
        if idle:
            return idle.pop(), True
        scheme, hostname, port = origin
        reader, writer = await asyncio.open_connection(
            hostname,
            port,
            ssl=self._tls if scheme == "https" else None,
            server_hostname=hostname if scheme == "https" else None,
        )
        return _Connection(reader, writer), False

    def _release(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        state = connection.h11
        if state.our_state is h11.DONE and state.their_state is h11.DONE and len(self._idle[origin]) < IDLE_PER_ORIGIN:
            state.start_next_cycle()
            self._idle[origin].append(connection)
        else:
            connection.close()

    @staticmethod
    async def _exchange(connection: _Connection, target: str, headers: list[tuple[str, str]], body: bytes) -> Answer:
        state = connection.h11
        data = state.send(h11.Request(method="POST", target=target, headers=headers)) or b""
        data += (state.send(h11.Data(data=body)) or b"") + (state.send(h11.EndOfMessage()) or b"")
        connection.writer.write(data)  # one write: request line, headers and body
        await connection.writer.drain()
        status, kept = 0, bytearray()
        while True:
            event = state.next_event()
            if event is h11.NEED_DATA:
                chunk = await connection.reader.read(65536)
                if not chunk and state.their_state is h11.SEND_RESPONSE:
                    raise HttpFailure("the connection closed before an answer")
                state.receive_data(chunk)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                kept += event.data[: max(0, MAX_KEPT_BODY - len(kept))]
            elif isinstance(event, h11.EndOfMessage):
                return Answer(status, bytes(kept))
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpFailure("the connection closed mid-answer")

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


class HttpxClient:
    """The same interface over httpx (its connection pool; `HTTP(S)_PROXY` honoured)."""

    def __init__(self, timeout_seconds: float) -> None:
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=timeout_seconds)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise HttpFailure(f"{type(error).__name__}: {error}") from error
        return Answer(response.status_code, response.content[:MAX_KEPT_BODY])

    async def aclose(self) -> None:
        await self._client.aclose()
