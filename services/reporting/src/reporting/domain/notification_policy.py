"""A tenant's notification policy: which clock and SLO events notify whom, over which channel, when, and how
a ladder escalates. Pure configuration with its limits; applied as YAML or JSON (`PUT /v1/notification-policies`),
every apply a new version.

The notification calendar is reporting's own, deliberately small: working intervals per weekday in one IANA
time zone, no holidays. It decides only *when a message may go out* (a P4 warning at 02:00 waits for the next
working minute); the SLA clock's business time stays the sla-engine's, which reporting never imports.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from string import Template
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Limits at the door: a policy is read on every clock transition of the tenant, so it stays small.
MAX_POLICY_BYTES = 256 * 1024
MAX_RULES = 200
MAX_CHANNELS = 50
MAX_TRIGGERS = 20
MAX_LEVELS = 10
MAX_RECIPIENTS = 50
MAX_REPEATS = 100
MAX_LEAD = timedelta(days=7)  # a lead-time trigger's lead: "30m before due", at most a week of business time
MAX_TEMPLATE_BYTES = 4096  # UTF-8 bytes of one template (a Chinese character is three)
# The `$name`s a template may use (reporting.domain.messages fills every one of them, "-" when the notification
# has no such value): anything else is refused when the policy is applied, never discovered while sending.
TEMPLATE_NAMES = frozenset(
    {
        "ticket_id",
        "metric",
        "trigger",
        "priority",
        "service",
        "customer",
        "agreement",
        "policy_id",
        "cycle",
        "threshold",
        "due_at",
        "remaining",
        "percent",
        "link",
        "level",
        "late",
        "slo_id",
        "alert",
        "label",
        "revision",
        "report_id",
    }
)

ClockTrigger = Literal["warning", "breached", "stopped_breached"]
SloTrigger = Literal["page", "ticket", "budget_exhausted"]
ChannelType = Literal["webhook", "slack", "teams", "pagerduty", "alertmanager", "email"]
Language = Literal["en", "zh-CN"]  # zh-CN: Simplified Chinese (also accepted as `zh-Hans` or `zh`)
REPORT_PUBLISHED = "report.published"
STORED = "stored"  # validation context: a policy read back from the store, its secrets kept apart
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _storable(value: str) -> str:
    """Stored as PostgreSQL JSON, which holds neither U+0000 nor a lone surrogate (not UTF-8)."""
    if "\x00" in value:
        raise ValueError("must not contain U+0000")
    try:
        value.encode()
    except UnicodeEncodeError as error:
        raise ValueError("must be valid UTF-8 (no lone surrogates)") from error
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_storable)]
Recipient = Annotated[str, Field(min_length=1, max_length=320), AfterValidator(_storable)]


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`: wall-clock time (an escalation waits in real minutes, not business ones)."""
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError(f"duration {text!r}: a whole number and one of s, m, h, d, e.g. 30m")
    return timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)])


def _duration(value: str) -> str:
    if parse_duration(value) > timedelta(days=30):
        raise ValueError("at most 30d")
    return value


Duration = Annotated[str, Field(max_length=16), AfterValidator(_duration)]


class Trigger(BaseModel):
    """`breached`, `stopped_breached`, `{event: warning, threshold: 75}` (the engine's `warn_at` percent crossed),
    `{before_due: 30m}` (the clock's remaining *business* time reaches 30 minutes), `{event: slo_alert, alert:
    page}`, or `report_published` (a period's report frozen and published, its original or an amendment: the
    distribution of the report)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: Literal["warning", "breached", "stopped_breached", "before_due", "slo_alert", "report_published"]
    threshold: int | None = Field(default=None, ge=1, le=99)
    alert: SloTrigger | None = None
    before_due: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict) and "before_due" in value and "event" not in value:
            return {"event": "before_due", **value}
        return {"event": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _complete(self) -> Trigger:
        if self.event == "warning" and self.threshold is None:
            raise ValueError("a warning trigger names its `threshold` (a percent the clock's warn_at crosses)")
        if self.event != "warning" and self.threshold is not None:
            raise ValueError("only a warning trigger has a `threshold`")
        if (self.event == "before_due") != (self.before_due is not None):
            raise ValueError("a before_due trigger, and only it, names its lead (`before_due: 30m`)")
        if self.before_due is not None and not timedelta(0) < parse_duration(self.before_due) <= MAX_LEAD:
            raise ValueError(f"a before_due lead is more than 0 and at most {MAX_LEAD.days}d")
        if (self.event == "slo_alert") != (self.alert is not None):
            raise ValueError("an slo_alert trigger, and only it, names its `alert` (page, ticket, budget_exhausted)")
        return self

    @property
    def name(self) -> str:
        """The trigger part of the idempotency key: `warning:75`, `breached`, `before_due:1800s`, `slo:page`,
        `report.published` (a lead in seconds: `30m` and `1800s` are one trigger)."""
        if self.event == "before_due":
            return f"before_due:{int(self.lead.total_seconds())}s"
        if self.event == "report_published":
            return REPORT_PUBLISHED
        if self.event == "warning":
            return f"warning:{self.threshold}"
        if self.event == "slo_alert":
            return f"slo:{self.alert}"
        return self.event

    @property
    def lead(self) -> timedelta:
        return parse_duration(self.before_due) if self.before_due is not None else timedelta(0)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


OneOrMany = Annotated[list[Name], Field(max_length=100)]


class Filters(BaseModel):
    """Every key given must match; a list matches any of its values. Keys left out match everything."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agreement: OneOrMany | None = None
    policy: OneOrMany | None = None
    metric: OneOrMany | None = None
    priority: OneOrMany | None = None
    service: OneOrMany | None = None
    customer: OneOrMany | None = None
    assignment_group: OneOrMany | None = None

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return {k: _one_or_many(v) for k, v in value.items()} if isinstance(value, dict) else value

    def matches(self, facts: dict[str, str | None]) -> bool:
        """`facts`: the event's value per filter key; a key the event does not carry (an SLO alert has no
        priority) never matches a filter that names it."""
        return all(facts.get(key) in allowed for key, allowed in self.model_dump(exclude_none=True).items())


class SmtpServer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: Name
    port: int = Field(default=587, ge=1, le=65535)
    sender: Recipient = Field(description="the From address")
    username: Name | None = None
    starttls: bool = True


class Channel(BaseModel):
    """Where messages go. `secret` is the channel's credential: the `whsec_` signing secret of a generic webhook,
    the PagerDuty routing key, the SMTP password; stored encrypted, never shown back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    type: ChannelType
    url: Annotated[str, Field(max_length=2048), AfterValidator(_storable)] | None = None
    secret: SecretStr | None = None
    smtp: SmtpServer | None = None

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Channel:
        if self.type == "email":
            if self.smtp is None:
                raise ValueError(f"channel {self.name!r}: an email channel names its `smtp` server")
        elif not self.url or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"channel {self.name!r}: a {self.type} channel needs an http(s) `url`")
        if info.context and info.context.get(STORED):
            return self  # as stored: the secret lives apart, encrypted
        if (
            self.type == "webhook"
            and self.secret is not None
            and not self.secret.get_secret_value().startswith("whsec_")
        ):
            raise ValueError(f"channel {self.name!r}: a webhook secret is `whsec_` + base64 (Standard Webhooks)")
        if self.type == "pagerduty" and self.secret is None:
            raise ValueError(f"channel {self.name!r}: a pagerduty channel needs its routing key as `secret`")
        return self


class Level(BaseModel):
    """One step of a ladder: `after` the trigger instant (wall-clock), to its own recipients (the rule's by
    default) over its own channel (the rule's by default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    after: Duration = "0m"
    recipients: Annotated[list[Recipient], Field(max_length=MAX_RECIPIENTS)] | None = None
    channel: Name | None = None

    @property
    def delay(self) -> timedelta:
        return parse_duration(self.after)


class Escalation(BaseModel):
    """Levels in order of `after`; then, with `repeat_every`, the last level again every so often until the
    clock stops, pauses, or someone acknowledges (at most `max_repeats` times)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    levels: Annotated[list[Level], Field(min_length=1, max_length=MAX_LEVELS)]
    repeat_every: Duration | None = None
    max_repeats: int = Field(default=10, ge=0, le=MAX_REPEATS)

    @model_validator(mode="after")
    def _ordered(self) -> Escalation:
        delays = [level.delay for level in self.levels]
        if delays != sorted(delays):
            raise ValueError("escalation levels are listed in order of `after`")
        if self.repeat_every is not None and parse_duration(self.repeat_every) < timedelta(minutes=1):
            raise ValueError("repeat_every is at least 1m")
        return self


class NotificationCalendar(BaseModel):
    """When messages may go out: `hours` per weekday (`mon-fri`, `sat`, `mon,wed`) as `HH:MM-HH:MM` wall-clock
    intervals [start, end) in `timezone`. Outside them a message is deferred to the next working minute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: Annotated[str, Field(max_length=64), AfterValidator(_storable)] = "UTC"
    hours: dict[Annotated[str, Field(max_length=32)], Annotated[list[str], Field(max_length=12)]] = Field(
        min_length=1, max_length=7
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown IANA time zone {value!r}") from error
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for days, intervals in value.items():
            _weekdays(days)
            for interval in intervals:
                _interval(interval)
        return value

    def intervals_on(self, weekday: int) -> list[tuple[time, time | None]]:
        """The working intervals of a weekday (0 = Monday); an end of None is midnight (`24:00`)."""
        found: list[tuple[time, time | None]] = []
        for days, intervals in self.hours.items():
            if weekday in _weekdays(days):
                found.extend(_interval(text) for text in intervals)
        return sorted(found, key=lambda pair: pair[0])

    def next_working_instant(self, at: datetime) -> datetime:
        """`at` itself when it falls in working time, else the start of the next working interval (the next
        working minute: intervals start on whole minutes). Wall-clock times are converted with `zoneinfo`
        (fold 0), as the sla-engine's calendars are."""
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        for offset in range(8):  # a week and a day: every weekday seen at least once
            day = local.date() + timedelta(days=offset)
            for start, end in self.intervals_on(day.weekday()):
                begins = datetime.combine(day, start, zone)
                ends = (
                    datetime.combine(day + timedelta(days=1), time(0), zone)
                    if end is None
                    else datetime.combine(day, end, zone)
                )
                if at < begins:
                    return begins.astimezone(at.tzinfo)
                if at < ends:
                    return at
        raise ValueError("the notification calendar has no working time")  # refused at validation already


def _weekdays(text: str) -> set[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        part = part.strip()
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"weekdays {text!r}: e.g. mon-fri, sat, mon,wed")
        low, high = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if high < low:
            raise ValueError(f"weekdays {text!r}: a range runs forward (mon-fri)")
        days.update(range(low, high + 1))
    return days


def _interval(text: str) -> tuple[time, time | None]:
    found = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", text.strip())
    if not found:
        raise ValueError(f"interval {text!r}: HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"interval {text!r}: not a time of day")
    start, end = time(h1, m1), (None if h2 == 24 else time(h2, m2))
    if end is not None and end <= start:
        raise ValueError(f"interval {text!r}: ends after it starts (24:00 for midnight)")
    return start, end


def _template(value: str, info: ValidationInfo) -> str:
    """A `string.Template` (no expressions, no attribute access: nothing to sandbox) of at most
    `MAX_TEMPLATE_BYTES`, using only `TEMPLATE_NAMES`. A stored policy is read back as it was accepted."""
    if info.context and info.context.get(STORED):
        return value
    if len(value.encode()) > MAX_TEMPLATE_BYTES:
        raise ValueError(f"a template is at most {MAX_TEMPLATE_BYTES} bytes (UTF-8)")
    template = Template(value)
    if not template.is_valid():
        raise ValueError("not a valid template: `$name` or `${name}`, `$$` for a dollar sign")
    unknown = sorted(set(template.get_identifiers()) - TEMPLATE_NAMES)
    if unknown:
        raise ValueError(f"unknown template names {unknown}: use {sorted(TEMPLATE_NAMES)}")
    return value


TemplateText = Annotated[
    str, Field(max_length=MAX_TEMPLATE_BYTES), AfterValidator(_storable), AfterValidator(_template)
]


def _language(value: Any) -> Any:
    return "zh-CN" if value in ("zh-Hans", "zh") else value


class Templates(BaseModel):
    """Overrides of the default message, `$name` placeholders (`string.Template`, names from `TEMPLATE_NAMES`).
    The title replaces the default title; the text goes before the default fields. The explained clock's link
    is never left to a template: every message carries it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: TemplateText | None = None
    text: TemplateText | None = None


def _languages(value: Any) -> Any:
    return {_language(key): v for key, v in value.items()} if isinstance(value, dict) else value


LanguageTemplates = Annotated[dict[Language, Templates], Field(max_length=2), BeforeValidator(_languages)]
AnyLanguage = Annotated[Language, BeforeValidator(_language)]


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: Name
    triggers: Annotated[list[Trigger], Field(min_length=1, max_length=MAX_TRIGGERS)]
    match: Filters = Field(default_factory=Filters)
    channel: Name
    recipients: Annotated[list[Recipient], Field(max_length=MAX_RECIPIENTS)] = Field(default_factory=list)
    escalation: Escalation | None = None
    calendar: NotificationCalendar | None = Field(default=None, description="none: any time (P1 always)")
    language: AnyLanguage | None = None
    templates: LanguageTemplates = Field(default_factory=dict)
    on_recalculation: Literal["ignore", "correct"] = Field(
        default="ignore",
        description="`correct`: when a recalculation changes what a sent notification of this "
        "rule said (breach retracted, due moved, state changed), send one correction with before and after",
    )

    @property
    def ladder(self) -> list[Level]:
        return self.escalation.levels if self.escalation else [Level()]


class NotificationPolicy(BaseModel):
    """A tenant's whole policy; `language` is the tenant's default for rules that name none, `templates` the
    tenant's own defaults (per language) for rules that have none of their own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: AnyLanguage = "en"
    templates: LanguageTemplates = Field(default_factory=dict)
    channels: Annotated[list[Channel], Field(max_length=MAX_CHANNELS)] = Field(default_factory=list)
    rules: Annotated[list[Rule], Field(max_length=MAX_RULES)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> NotificationPolicy:
        names = [channel.name for channel in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names are unique")
        ids = [rule.id for rule in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError("rule ids are unique")
        for rule in self.rules:
            for channel in (rule.channel, *(level.channel for level in rule.ladder if level.channel)):
                if channel not in names:
                    raise ValueError(f"rule {rule.id!r}: no channel named {channel!r}")
        return self

    def channel(self, name: str) -> Channel | None:
        return next((channel for channel in self.channels if channel.name == name), None)

    def rule(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def templates_for(self, rule: Rule, language: Language) -> Templates | None:
        """The rule's templates in `language`, field by field falling back to the tenant's; None: the defaults."""
        own, tenant = rule.templates.get(language), self.templates.get(language)
        if own is None or tenant is None:
            return own or tenant
        return Templates(title=own.title or tenant.title, text=own.text or tenant.text)
