"""OpenTelemetry tracing carried through Kafka headers (W3C `traceparent`) from intake to reporting.

Spans are always made, so the context propagates and every log line names its trace; they leave the process
only when an exporter is configured (`tracing.exporter`: none by default, `otlp` over HTTP, or `console`).
The path of one event: intake's HTTP span (child of the caller's `traceparent`, if any) -> the outbox row's
headers -> the sla-engine's span for that ticket -> the clock transition's headers -> reporting's span.
A batch consumed together is one span with a link to each record's context (OpenTelemetry's messaging
convention); an effect traced to one record (a ticket's reconciliation, a read-model update) is its child.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Literal, TypeAlias

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, Field, SecretStr

log = logging.getLogger(__name__)

KafkaHeaders: TypeAlias = Sequence[tuple[str, bytes]] | None
TraceContext: TypeAlias = Context
_PROPAGATOR = TraceContextTextMapPropagator()
TRACE_HEADERS = frozenset(_PROPAGATOR.fields)


class TracingSettings(BaseModel):
    exporter: Literal["none", "otlp", "console"] = "none"
    otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces", description="OTLP/HTTP traces endpoint of a collector"
    )
    otlp_headers: SecretStr | None = Field(default=None, description="e.g. 'authorization=Bearer x,team=sre'")
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="share of new traces recorded")


# One tracer per provider, kept: `get_tracer` builds a new one on every call.
_tracer = TracerProvider(resource=Resource.create({"service.name": "slm"})).get_tracer("slm")


def configure_tracing(service: str, settings: TracingSettings) -> TracerProvider:
    """Install this process's tracer provider (the last call wins: tests start several apps in one process)."""
    global _tracer
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    processor = _span_processor(settings)
    if processor is not None:
        provider.add_span_processor(processor)
    _tracer = provider.get_tracer("slm")
    return provider


def _span_processor(settings: TracingSettings) -> SpanProcessor | None:
    exporter: SpanExporter
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        headers = _parse_headers(settings.otlp_headers.get_secret_value()) if settings.otlp_headers else None
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint, headers=headers, timeout=5)
    elif settings.exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        return None
    return BatchSpanProcessor(exporter, schedule_delay_millis=1000)


def _parse_headers(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {name.strip(): value.strip() for name, value in pairs}


def tracer() -> trace.Tracer:
    return _tracer


def context_from_headers(headers: KafkaHeaders | Mapping[str, str]) -> TraceContext:
    """The producer's trace context from a Kafka record's headers (or an HTTP request's); empty if none."""
    carrier: dict[str, str] = {}
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for name, value in items:
        if name.lower() in TRACE_HEADERS:
            carrier[name.lower()] = value.decode("latin-1") if isinstance(value, bytes) else value
    return _PROPAGATOR.extract(carrier) if carrier else Context()


def current_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current span, for an outgoing record."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


@contextmanager
def consuming(
    name: str,
    parent: TraceContext | None = None,
    *,
    links: Sequence[TraceContext] = (),
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[Span]:
    """A consumer span, child of `parent` and linked to `links` (the other records it handles)."""
    span_links = [
        Link(span_context)
        for context in links
        if (span_context := trace.get_current_span(context).get_span_context()).is_valid
    ]
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=SpanKind.CONSUMER,
        links=span_links,
        attributes={"messaging.system": "kafka", **(attributes or {})},
    ) as span:
        yield span


def consuming_batch(name: str, headers: Sequence[KafkaHeaders]) -> AbstractContextManager[Span]:
    """One consumer span for records handled together, linked to each record's producer context."""
    return consuming(
        name,
        links=[context_from_headers(item) for item in headers],
        attributes={"messaging.batch.message_count": len(headers)},
    )
