"""Structured JSON logs carrying tenant, event id, ticket id and trace id from context variables."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

_EMPTY: Mapping[str, str] = MappingProxyType({})
_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("slm_log_context", default=_EMPTY)


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Adds fields (tenant, event_id, ticket_id) to every log line inside the block; trace_id comes from the span."""
    merged = {**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
            **_CONTEXT.get(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            document["trace_id"] = format(span.trace_id, "032x")
            document["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_logging(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every coordinator step at INFO; keep its warnings only.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # httpx logs every request at INFO: one JSON line per notification sent cost reporting's delivery loop a
    # line's formatting and write per message (bench/notifications); the delivery log and metrics say it all.
    logging.getLogger("httpx").setLevel(logging.WARNING)
