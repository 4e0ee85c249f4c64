"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`), no extra library.

The browser reads commands from its fd 3 and writes answers and events to its fd 4, each a JSON text ended by a
NUL byte (the transport Playwright uses). Enough for sign-in flows: navigate, type into a form and submit it,
read the DOM, the cookies (HttpOnly ones too) and the console, take a screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]
TIMEOUT = 60.0


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Debian's chromium is missing: run services/reporting/scripts/install-system-deps.sh", pytrace=False
        )
    return found


class Browser:
    """One headless Chromium with one page; `command` sends a DevTools command to the page."""

    def __init__(self, process: asyncio.subprocess.Process, to_browser: int, reader: asyncio.StreamReader) -> None:
        self._process = process
        self._to_browser = to_browser
        self._reader = reader
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._event_arrived = asyncio.Event()
        self._session: str | None = None
        self._pump = asyncio.create_task(self._read_messages())

    async def _read_messages(self) -> None:
        while True:
            try:
                raw = await self._reader.readuntil(b"\0")
            except (asyncio.IncompleteReadError, ConnectionError):
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(ConnectionError("Chromium closed its DevTools pipe"))
                return
            message = json.loads(raw[:-1])
            if "id" in message and message["id"] in self._pending:
                self._pending.pop(message["id"]).set_result(message)
            else:
                self.events.append(message)
                self._event_arrived.set()

    async def send(self, method: str, params: dict[str, Any] | None = None, *, page: bool = True) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if page and self._session:
            message["sessionId"] = self._session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        answer = await asyncio.wait_for(future, TIMEOUT)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def attach(self) -> None:
        targets = (await self.send("Target.getTargets", page=False))["targetInfos"]
        [page] = [t for t in targets if t["type"] == "page"][:1]
        self._session = (
            await self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, page=False)
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            await self.send(f"{domain}.enable")

    async def wait_for_event(self, method: str, after: int) -> dict[str, Any]:
        """The first event `method` at or after position `after` of `self.events`."""

        async def found() -> dict[str, Any]:
            while True:
                for event in self.events[after:]:
                    if event.get("method") == method:
                        return event
                self._event_arrived.clear()
                await self._event_arrived.wait()

        return await asyncio.wait_for(found(), TIMEOUT)

    async def navigate(self, url: str) -> None:
        mark = len(self.events)
        await self.send("Page.navigate", {"url": url})
        await self.wait_for_event("Page.loadEventFired", mark)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def submit(self, expression: str) -> None:
        """Run `expression` (which submits a form or clicks a button) and wait for the page it leads to."""
        mark = len(self.events)
        await self.evaluate(expression)
        await self.wait_for_event("Page.loadEventFired", mark)

    async def location(self) -> str:
        return str(await self.evaluate("window.location.href"))

    async def html(self) -> str:
        return str(await self.evaluate("document.documentElement.outerHTML"))

    async def cookies(self) -> list[dict[str, Any]]:
        cookies: list[dict[str, Any]] = (await self.send("Storage.getCookies", page=False))["cookies"]
        return cookies

    async def screenshot(self, width: int, height: int) -> bytes:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        data = (await self.send("Page.captureScreenshot", {"format": "png"}))["data"]
        return base64.b64decode(data)

    def console_errors(self) -> list[str]:
        """Console and browser log errors so far (a CSP violation is reported here)."""
        errors = []
        for event in self.events:
            if event.get("method") == "Log.entryAdded" and event["params"]["entry"]["level"] == "error":
                errors.append(event["params"]["entry"]["text"])
            if event.get("method") == "Runtime.exceptionThrown":
                errors.append(str(event["params"]["exceptionDetails"].get("text")))
        return errors

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send("Browser.close", page=False), 10)
        self._pump.cancel()
        os.close(self._to_browser)
        try:
            await asyncio.wait_for(self._process.wait(), 20)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


@contextlib.asynccontextmanager
async def headless_chromium() -> AsyncIterator[Browser]:
    """A fresh browser profile (no cookies) with one blank page, closed at the end."""
    commands_read, commands_write = os.pipe()
    answers_read, answers_write = os.pipe()
    with tempfile.TemporaryDirectory() as profile:
        # Chromium expects the pipe on fds 3 and 4: bash moves our descriptors there before exec'ing it.
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            f'exec "$0" "$@" 3<&{commands_read} 4>&{answers_write} {commands_read}<&- {answers_write}>&-',
            chromium_binary(),
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            pass_fds=(commands_read, answers_write),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        os.close(commands_read)
        os.close(answers_write)
        reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(answers_read, "rb", buffering=0)
        )
        browser = Browser(process, commands_write, reader)
        try:
            await browser.attach()
            yield browser
        finally:
            await browser.close()
            transport.close()
