"""The demo's notification receiver: a Standard Webhooks endpoint on loopback that writes what it receives to a file.

`make demo` configures one notification rule whose channel is this receiver, so a person sees where the
notifications went without an account anywhere: each request is checked against the Standard Webhooks
signature (`webhook-id`, `webhook-timestamp`, `webhook-signature` under the demo's `whsec_` secret) and
appended to a JSON-lines file as {received_at, webhook_id, signature_ok, body}. A thread of the demo process
serves it; it stops with the demo.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PATH = "/notifications"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signature_ok(secret: str, headers: dict[str, str], raw: bytes) -> bool:
    """Standard Webhooks: `v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{body}`."""
    if not all(name in headers for name in ("webhook-id", "webhook-timestamp", "webhook-signature")):
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [part.partition(",") for part in headers["webhook-signature"].split(" ")]
    return any(version == "v1" and hmac.compare_digest(signature, expected) for version, _, signature in offered)


class DemoReceiver:
    """Serves `POST /notifications` on 127.0.0.1 (a free port) and writes each request to `file`."""

    def __init__(self, file: Path, secret: str) -> None:
        self.file = file
        self.secret = secret
        self._lock = threading.Lock()
        self._received: list[dict[str, Any]] = []
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("")
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path != PATH:
                    self.send_response(404)
                    self.end_headers()
                    return
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.record(headers, raw)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # the demo prints what it received; no access log on its output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def start(self) -> DemoReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, headers: dict[str, str], raw: bytes) -> None:
        entry = {
            "received_at": datetime.now(UTC).isoformat(),
            "webhook_id": headers.get("webhook-id"),
            "signature_ok": signature_ok(self.secret, headers, raw),
            "body": json.loads(raw),
        }
        with self._lock:
            self._received.append(entry)
            with self.file.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")

    @property
    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._received)
