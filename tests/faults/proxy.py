"""A TCP fault proxy between the services and PostgreSQL: added latency, connection resets, a blackhole.

It runs its own asyncio loop in a thread, so whatever the harness blocks on never stalls the forwarded bytes.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class TcpFaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.latency = 0.0
        self._blackhole_until = 0.0  # monotonic; bytes and new connections wait until then
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> TcpFaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def blackhole(self, seconds: float) -> None:
        """Nothing passes for `seconds`: open connections hang, new ones are accepted and wait."""
        self._blackhole_until = time.monotonic() + seconds

    def reset_connections(self) -> int:
        """Every open connection ends with a TCP RST, as a dropped NAT entry or a crashed middlebox does."""
        return self._call(self._reset())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(30)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset()

    async def _reset(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._writers.difference_update(writers)
        return len(writers) // 2

    async def _hold_while_blackholed(self) -> None:
        left = self._blackhole_until - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        await self._hold_while_blackholed()
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, upstream_writer))
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer, client_writer),
            self._pipe(upstream_reader, client_writer, upstream_writer),
        )
        self._writers.difference_update((client_writer, upstream_writer))

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, other: asyncio.StreamWriter
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                await self._hold_while_blackholed()
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for side in (writer, other):
                if not side.transport.is_closing():
                    side.transport.abort()
