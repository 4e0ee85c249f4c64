"""Intake's acceptance rules, pure: what makes an incoming CloudEvent acceptable, and why not.

Every rejection carries a `code` (stable, for programs) and a `reason` naming the field and what was wrong
(for people). The rules, in the order they are checked (docs/intake.md lists them with examples):

1. The body is UTF-8 JSON without NaN/Infinity; an event is a JSON object nested at most `MAX_DEPTH` deep;
   strings hold no U+0000 and no lone surrogates; numbers are finite and integers fit in 64 bits.
2. `tenantid` is the API key's tenant on HTTP (absent = filled in from the key; another tenant = rejected,
   never rerouted); on Kafka it is required and must be a known tenant (checked by the caller).
3. `time` (and the times inside `data`) is an RFC 3339 string with an offset, within `[earliest_time,
   latest_time)`, not older than `max_age` before `now` (nothing still counts it), and at most
   `max_future_skew` ahead of `now`; accepted times are normalised to UTC.
4. Unknown envelope attributes are CloudEvents extensions: kept if the name is 1-20 lower-case letters or
   digits and the value a string, number or boolean; `data_base64` (binary data) is refused.
5. The envelope and `data` match the shared contract (`slm_shared.events`); unknown `data` fields are
   rejected, upstream extras of a ticket belong in `data.attributes`.
6. Cross-field rules the contract types cannot express: `good <= total`, a window's start before its end,
   a feedback score within its scale.
7. Identifiers (`id`, `source`, `tenantid`, `subject`, the ticket, service, customer, priority, group and
   assignee of `data`) hold at most `MAX_IDENTIFIER_BYTES` bytes of UTF-8: they become Kafka keys and
   database keys, which are bounded in bytes, not characters.
8. The canonical event fits in `max_event_bytes` (the outbox relay must be able to publish it).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ValidationError

from slm_shared import topics
from slm_shared.events import (
    AVAILABILITY_EVENT,
    FEEDBACK_EVENT,
    MAINTENANCE_EVENT,
    MEASUREMENT_EVENT,
    TICKET_EVENT,
    CloudEvent,
    FeedbackData,
    InvalidEvent,
    MaintenanceData,
    MeasurementData,
    parse_data,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

# The types intake accepts from upstream, each on its topic from the kit's one map (the others are written by the
# services themselves).
ROUTES: Final = {
    event_type: topics.TOPIC_OF[event_type]
    for event_type in (TICKET_EVENT, AVAILABILITY_EVENT, MEASUREMENT_EVENT, MAINTENANCE_EVENT, FEEDBACK_EVENT)
}

RejectCode = Literal[
    "malformed_json",
    "not_an_object",
    "invalid_text",
    "too_deep",
    "invalid_number",
    "missing_tenant",
    "tenant_mismatch",
    "unknown_tenant",
    "invalid_time",
    "time_without_offset",
    "time_in_future",
    "time_out_of_range",
    "invalid_extension",
    "binary_data",
    "invalid_envelope",
    "identifier_too_long",
    "unknown_type",
    "invalid_data",
    "inconsistent_data",
    "event_too_large",
    "invalid_webhook",
    "unmapped_value",
    "internal_error",
    "storage_error",
]
REJECT_CODES: Final[frozenset[str]] = frozenset(RejectCode.__args__)  # type: ignore[attr-defined]

Outcome = Literal["accepted", "duplicate", "rejected"]

MAX_DEPTH: Final = 32
MAX_IDENTIFIER_BYTES: Final = 512
ENVELOPE_IDENTIFIERS: Final = ("id", "source", "tenantid", "subject")
DATA_IDENTIFIERS: Final = ("ticket_id", "service", "customer", "priority", "assignment_group", "assignee")
INT64_MAX: Final = 2**63 - 1
# CloudEvents 1.0 core attributes; anything else in the envelope is an extension attribute.
CORE_ATTRIBUTES: Final = frozenset(
    {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data", "tenantid"}
)
EXTENSION_NAME: Final = re.compile(r"[a-z0-9]{1,20}")
RFC3339: Final = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<clock>\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)
JSON_CONTENT_TYPES: Final = ("application/json", "text/json")
# Datetime fields inside `data`, held to the same rule as the envelope's `time`.
DATA_TIMES: Final = {MEASUREMENT_EVENT: ("window_start", "window_end"), MAINTENANCE_EVENT: ("start", "end")}


class Rejected(InvalidEvent):
    """An event intake will not accept: `code` for programs, the message (field: what) for people."""

    def __init__(self, code: RejectCode, reason: str) -> None:
        super().__init__(reason)
        self.code: RejectCode = code
        self.reason = reason


@dataclass(frozen=True)
class EventResult:
    index: int
    outcome: Outcome
    id: str | None = None
    reason: str | None = None
    code: RejectCode | None = None


@dataclass(frozen=True)
class Routed:
    """An accepted canonical event, the topic and key it goes out with, and its canonical bytes."""

    event: CloudEvent
    topic: str
    key: str
    canonical: bytes

    @property
    def dedup_key(self) -> tuple[str, str, str]:
        return self.event.dedup_key


@dataclass(frozen=True)
class Limits:
    max_future_skew: timedelta
    max_event_bytes: int
    earliest_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    latest_time: datetime = datetime(2200, 1, 1, tzinfo=UTC)
    max_age: timedelta | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(raw: bytes | str) -> Any:
    """Decode UTF-8 JSON strictly; raises `Rejected(malformed_json)` with the position of the fault."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        document, end = _DECODER.raw_decode(text, _skip_space(text, 0))
        if _skip_space(text, end) != len(text):
            raise json.JSONDecodeError("extra data after the JSON value", text, end)
    except UnicodeDecodeError as error:
        raise Rejected("malformed_json", f"body: not UTF-8 ({error.reason} at byte {error.start})") from error
    except json.JSONDecodeError as error:
        raise Rejected("malformed_json", f"body: not valid JSON ({error.msg} at char {error.pos})") from error
    except RecursionError as error:
        raise Rejected("too_deep", f"body: nested deeper than {MAX_DEPTH} levels") from error
    except ValueError as error:  # NaN/Infinity, or an integer with more digits than Python parses
        raise Rejected("malformed_json", f"body: not valid JSON ({error})") from error
    return document


def split_json_array(raw: bytes) -> list[tuple[Any, bytes]]:
    """A JSON array of events: each element with the exact bytes it had in the body (for the archive)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Rejected("malformed_json", f"body: not UTF-8 ({error.reason} at byte {error.start})") from error
    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        raise Rejected("malformed_json", "body: a batch must be a JSON array of CloudEvents")
    items: list[tuple[Any, bytes]] = []
    position = _skip_space(text, position + 1)
    try:
        if position < len(text) and text[position] == "]":
            position += 1
        else:
            while True:
                document, end = _DECODER.raw_decode(text, position)
                items.append((document, text[position:end].encode()))
                position = _skip_space(text, end)
                if position < len(text) and text[position] == ",":
                    position = _skip_space(text, position + 1)
                    continue
                if position < len(text) and text[position] == "]":
                    position += 1
                    break
                raise json.JSONDecodeError("expected ',' or ']'", text, position)
        if _skip_space(text, position) != len(text):
            raise json.JSONDecodeError("extra data after the array", text, position)
    except json.JSONDecodeError as error:
        raise Rejected("malformed_json", f"body: not valid JSON ({error.msg} at char {error.pos})") from error
    except RecursionError as error:
        raise Rejected("too_deep", f"body: nested deeper than {MAX_DEPTH} levels") from error
    except ValueError as error:
        raise Rejected("malformed_json", f"body: not valid JSON ({error})") from error
    return items


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def check_values(document: Any) -> None:
    """Rule 1 on a parsed document: depth, text and numbers, walked without recursion."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Rejected("too_deep", f"{path or 'body'}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not -INT64_MAX - 1 <= value <= INT64_MAX:
                raise Rejected("invalid_number", f"{path}: integer outside the 64-bit range")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise Rejected("invalid_number", f"{path}: number is not finite")
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"{path}.{key!r}" if path else repr(key))
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))


def _check_text(value: str, path: str) -> None:
    if "\x00" in value:
        raise Rejected("invalid_text", f"{path or 'body'}: strings must not contain U+0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise Rejected("invalid_text", f"{path or 'body'}: lone surrogate in a string") from error


def parse_rfc3339(value: Any, field: str) -> datetime:
    """An RFC 3339 timestamp with an offset; a number, a date alone or a naive time is refused."""
    if not isinstance(value, str):
        raise Rejected("invalid_time", f"{field}: must be an RFC 3339 string, got {type(value).__name__}")
    match = RFC3339.fullmatch(value)
    if match is None:
        raise Rejected("invalid_time", f"{field}: {value[:64]!r} is not an RFC 3339 timestamp")
    if match["offset"] is None:
        raise Rejected("time_without_offset", f"{field}: {value[:64]!r} has no UTC offset (add Z or +hh:mm)")
    try:
        return datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError as error:
        raise Rejected("invalid_time", f"{field}: {value[:64]!r} is not a valid date/time ({error})") from error


def utc_time_in_range(value: Any, field: str, now: datetime, limits: Limits) -> datetime:
    """Rule 3: the time in UTC, inside the accepted range; a naive, malformed or out-of-range one is refused."""
    parsed = parse_rfc3339(value, field)
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError as error:  # year 1 with a positive offset, year 9999 with a negative one
        raise Rejected(
            "time_out_of_range", f"{field}: {value[:64]!r} is outside the years datetimes can hold in UTC"
        ) from error
    if not limits.earliest_time <= instant < limits.latest_time:
        raise Rejected(
            "time_out_of_range",
            f"{field}: {instant.isoformat()} is outside [{limits.earliest_time.isoformat()}, "
            f"{limits.latest_time.isoformat()}), the times intake accepts",
        )
    if limits.max_age is not None and instant < now - limits.max_age:
        raise Rejected(
            "time_out_of_range",
            f"{field}: {instant.isoformat()} is more than {limits.max_age.days} days old; nothing counts "
            "events that old any more",
        )
    return instant


def _check_identifiers(event: CloudEvent) -> None:
    """Rule 7, in bytes: 512 characters of a 4-byte script would be 2 KiB of key."""
    named = [(name, getattr(event, name)) for name in ENVELOPE_IDENTIFIERS]
    named += [(f"data.{name}", event.data.get(name)) for name in DATA_IDENTIFIERS]
    for name, value in named:
        if isinstance(value, str) and len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
            raise Rejected(
                "identifier_too_long",
                f"{name}: {len(value.encode('utf-8'))} bytes of UTF-8, over {MAX_IDENTIFIER_BYTES}",
            )


def _check_extensions(document: dict[str, Any]) -> None:
    if "data_base64" in document:
        raise Rejected("binary_data", "data_base64: binary data is not accepted; send JSON `data`")
    for name, value in document.items():
        if name in CORE_ATTRIBUTES:
            continue
        if not EXTENSION_NAME.fullmatch(name):
            raise Rejected(
                "invalid_extension", f"{name[:40]}: extension attribute names are 1-20 lower-case letters or digits"
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise Rejected("invalid_extension", f"{name}: an extension attribute must be a string, number or boolean")


def _check_content_type(document: dict[str, Any]) -> None:
    content_type = document.get("datacontenttype")
    if content_type is None:
        return
    if not isinstance(content_type, str):
        raise Rejected("invalid_envelope", "datacontenttype: must be a string")
    base = content_type.split(";")[0].strip().lower()
    if base not in JSON_CONTENT_TYPES and not base.endswith("+json"):
        raise Rejected("invalid_envelope", f"datacontenttype: {content_type[:64]!r} is not JSON")


def _validation_reason(error: ValidationError) -> tuple[RejectCode, str]:
    parts: list[str] = []
    code: RejectCode = "invalid_envelope"
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        if item["loc"] and item["loc"][0] == "data" and len(item["loc"]) > 1:
            code = "invalid_data"
        parts.append(f"{location}: {item['msg']}" if location else str(item["msg"]))
    return code, "; ".join(parts)


def _check_consistency(event_type: str, data: BaseModel) -> None:
    if isinstance(data, MeasurementData):
        windowed = data.window_start is not None or data.window_end is not None
        counted = data.good is not None or data.total is not None
        if windowed and (data.window_start is None or data.window_end is None):
            raise Rejected("inconsistent_data", "data.window_start/window_end: give both or neither")
        if data.window_start is not None and data.window_end is not None and data.window_start >= data.window_end:
            raise Rejected("inconsistent_data", "data.window_end: must be after data.window_start")
        if counted and (data.good is None or data.total is None):
            raise Rejected("inconsistent_data", "data.good/total: give both or neither")
        if data.good is not None and data.total is not None and data.good > data.total:
            raise Rejected("inconsistent_data", "data.good: must not exceed data.total")
        if counted == (data.value is not None):
            raise Rejected("inconsistent_data", "data: a measurement is either good/total counts or one value")
    elif isinstance(data, MaintenanceData):
        if data.start >= data.end:
            raise Rejected("inconsistent_data", "data.end: must be after data.start")
    elif isinstance(data, FeedbackData) and data.score > data.scale:
        raise Rejected("inconsistent_data", "data.score: must not exceed data.scale")


def route(event: CloudEvent) -> tuple[str, str]:
    """The topic of an accepted event and its Kafka key (DESIGN.md section 2)."""
    topic = ROUTES[event.type]
    if topic in (topics.TICKETS, topics.FEEDBACK):
        return topic, topics.ticket_key(event.tenantid, str(event.data["ticket_id"]))
    return topic, topics.service_key(event.tenantid, str(event.data["service"]))


def accept(document: Any, *, tenant_id: str | None, now: datetime, limits: Limits) -> Routed:
    """Validate one event against the rules above; raises `Rejected` naming the field and the fault.

    `tenant_id` is the API key's tenant (HTTP, webhooks) or None when the event itself names it (Kafka).
    """
    if not isinstance(document, dict):
        raise Rejected("not_an_object", "body: a CloudEvent must be a JSON object")
    check_values(document)
    claimed = document.get("tenantid")
    if tenant_id is not None:
        if claimed is None:
            document = {**document, "tenantid": tenant_id}
        elif claimed != tenant_id:
            raise Rejected("tenant_mismatch", "tenantid: does not match the API key's tenant")
    elif claimed is None:
        raise Rejected("missing_tenant", "tenantid: Field required")
    if "time" not in document:
        raise Rejected("invalid_envelope", "time: Field required")
    event_time = utc_time_in_range(document["time"], "time", now, limits)
    _check_extensions(document)
    _check_content_type(document)
    try:
        event = CloudEvent.model_validate(document)
    except ValidationError as error:
        raise Rejected(*_validation_reason(error)) from error
    if event.type not in ROUTES:
        raise Rejected("unknown_type", f"type: {event.type[:64]!r} is not accepted by intake (one of {sorted(ROUTES)})")
    _check_identifiers(event)
    data_times = {
        field: utc_time_in_range(event.data[field], f"data.{field}", now, limits)
        for field in DATA_TIMES.get(event.type, ())
        if event.data.get(field) is not None
    }
    try:
        data = parse_data(event)
    except InvalidEvent as error:
        raise Rejected("invalid_data", str(error)) from error
    _check_consistency(event.type, data)
    if event_time > now + limits.max_future_skew:
        raise Rejected(
            "time_in_future",
            f"time: {event_time.isoformat()} is more than {limits.max_future_skew} ahead of intake's clock",
        )
    normalised: dict[str, Any] = {
        "time": event_time,
        "data": {**event.data, **{field: _utc_text(at) for field, at in data_times.items()}},
    }
    if event.subject is None:
        normalised["subject"] = event.data.get("ticket_id") or event.data.get("service")
    event = event.model_copy(update=normalised)
    canonical = event.to_json_bytes()
    if len(canonical) > limits.max_event_bytes:
        raise Rejected("event_too_large", f"body: the event is {len(canonical)} bytes, over {limits.max_event_bytes}")
    topic, key = route(event)
    return Routed(event=event, topic=topic, key=key, canonical=canonical)


def _utc_text(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def reject_result(index: int, document: Any, error: Rejected) -> EventResult:
    event_id = document.get("id") if isinstance(document, dict) else None
    shown = event_id if isinstance(event_id, str) and not _has_bad_text(event_id) else None
    return EventResult(index, "rejected", shown, error.reason, error.code)


def _has_bad_text(value: str) -> bool:
    try:
        _check_text(value, "")
    except Rejected:
        return True
    return False


def first_occurrences(routed: list[tuple[int, Routed]]) -> Iterator[tuple[int, Routed, bool]]:
    """Each event with whether it is the first of its dedup key in the list (later ones are duplicates)."""
    seen: set[tuple[str, str, str]] = set()
    for index, item in routed:
        first = item.dedup_key not in seen
        seen.add(item.dedup_key)
        yield index, item, first
