"""A notification policy's message templates and languages: `$name` overrides of the default title and text."""

from __future__ import annotations

from string import Template
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from reporting.domain.notification_fields import STORED, storable

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
Language = Literal["en", "zh-CN"]  # zh-CN: Simplified Chinese (also accepted as `zh-Hans` or `zh`)


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


TemplateText = Annotated[str, Field(max_length=MAX_TEMPLATE_BYTES), AfterValidator(storable), AfterValidator(_template)]


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
