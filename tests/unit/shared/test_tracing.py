"""Trace context in and out of Kafka headers, onto outbox events and into the JSON log lines (no I/O)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from opentelemetry import trace

from slm_shared.events import CloudEvent
from slm_shared.logging import JsonFormatter
from slm_shared.outbox import OutgoingEvent, traced
from slm_shared.tracing import TracingSettings, consuming, context_from_headers, current_headers, tracer

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


def an_event(headers: dict[str, str] | None = None) -> OutgoingEvent:
    event = CloudEvent(
        specversion="1.0",
        id="e-1",
        source="test",
        type="itsm.ticket.v1",
        time=datetime(2026, 11, 23, tzinfo=UTC),
        tenantid="acme",
        data={},
    )
    return OutgoingEvent(topic="t", key="acme/INC-1", event=event, headers=headers)


def test_a_record_s_traceparent_header_becomes_the_parent_of_the_consumer_span() -> None:
    parent = context_from_headers([("other", b"x"), ("traceparent", TRACEPARENT.encode())])
    with consuming("t process", parent) as span:
        context = span.get_span_context()
        outgoing = current_headers()
    assert format(context.trace_id, "032x") == TRACE
    assert format(context.span_id, "016x") != PARENT
    # What goes out names this span: same trace, this span as the parent of whatever consumes it next.
    assert outgoing["traceparent"] == f"00-{TRACE}-{format(context.span_id, '016x')}-01"


def test_without_a_traceparent_a_span_starts_a_new_trace_and_outside_spans_nothing_is_sent() -> None:
    assert current_headers() == {}
    with consuming("t process", context_from_headers(None)) as span:
        assert format(span.get_span_context().trace_id, "032x") != TRACE
        assert "traceparent" in current_headers()


def test_a_malformed_traceparent_is_ignored_rather_than_trusted() -> None:
    parent = context_from_headers({"traceparent": "00-not-a-trace-01"})
    assert not trace.get_current_span(parent).get_span_context().is_valid


def test_outgoing_events_carry_the_current_trace_but_keep_their_own() -> None:
    own = f"00-{'1' * 32}-{'2' * 16}-01"
    with tracer().start_as_current_span("work", context=context_from_headers({"traceparent": TRACEPARENT})):
        plain, replayed, carried = traced([an_event(), an_event({"slm-replay": "r1"}), an_event({"traceparent": own})])
    assert plain.headers is not None
    assert plain.headers["traceparent"].startswith(f"00-{TRACE}-")
    assert replayed.headers == {"slm-replay": "r1", "traceparent": plain.headers["traceparent"]}
    assert carried.headers == {"traceparent": own}
    assert traced([an_event()])[0].headers is None  # no span, nothing added


def test_log_lines_name_the_trace_and_span_they_were_written_in() -> None:
    formatter = JsonFormatter("sla-engine")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert "trace_id" not in json.loads(formatter.format(record))
    with consuming("t process", context_from_headers({"traceparent": TRACEPARENT})) as span:
        line = json.loads(formatter.format(record))
    assert line["trace_id"] == TRACE
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


def test_tracing_exports_nothing_unless_configured() -> None:
    assert TracingSettings().exporter == "none"
    secret = TracingSettings.model_validate({"exporter": "otlp", "otlp_headers": "authorization=Bearer s3cr3t"})
    assert "s3cr3t" not in repr(secret)
