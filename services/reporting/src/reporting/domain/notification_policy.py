"""A tenant's notification policy: which events notify whom, over which channel, when, how a ladder escalates.

Pure configuration with its limits; applied as YAML or JSON (`PUT /v1/notification-policies`), every apply a new
version. Its field types are domain.notification_fields, the calendar of when messages may go out
domain.notification_calendar, message templates and languages domain.notification_templates.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, model_validator

from reporting.domain.notification_calendar import NotificationCalendar
from reporting.domain.notification_fields import STORED, Duration, Name, Recipient, parse_duration, storable
from reporting.domain.notification_templates import AnyLanguage, Language, LanguageTemplates, Templates

# Limits at the door: a policy is read on every clock transition of the tenant, so it stays small.
MAX_POLICY_BYTES = 256 * 1024
MAX_RULES = 200
MAX_CHANNELS = 50
MAX_TRIGGERS = 20
MAX_LEVELS = 10
MAX_RECIPIENTS = 50
MAX_REPEATS = 100
MAX_LEAD = timedelta(days=7)  # a lead-time trigger's lead: "30m before due", at most a week of business time

SloTrigger = Literal["page", "ticket", "budget_exhausted"]
ChannelType = Literal["webhook", "slack", "teams", "pagerduty", "alertmanager", "email"]
REPORT_PUBLISHED = "report.published"


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
    url: Annotated[str, Field(max_length=2048), AfterValidator(storable)] | None = None
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
