"""The words of a notification, in English or Simplified Chinese: a title, plain-text lines, and labelled
fields every channel lays out its own way (Block Kit, Adaptive Card, e-mail). Pure; the values come in already
computed for the sending instant. A rule may override the title and the text with `$name` templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from string import Template
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from reporting.domain.notification_policy import REPORT_PUBLISHED
from reporting.domain.notification_templates import TEMPLATE_NAMES, Language, Templates
from reporting.domain.notifications import CORRECTION

if TYPE_CHECKING:
    from reporting.domain.notification_sending import Values

TITLES: dict[Language, dict[str, str]] = {
    "en": {
        "warning": "SLA warning: $ticket_id $metric at $threshold %",
        "breached": "SLA breached: $ticket_id $metric",
        "before_due": "SLA due soon: $ticket_id $metric, due $due_at",
        "stopped_breached": "SLA closed in breach: $ticket_id $metric",
        "resolve": "SLA clock stopped: $ticket_id $metric",
        "slo": "SLO alert $alert: $slo_id",
        "report.published": "Service level report published: $label (revision $revision)",
        "correction": "SLA correction: $ticket_id $metric",
    },
    "zh-CN": {
        "warning": "SLA 预警：$ticket_id $metric 已达 $threshold %",
        "breached": "SLA 已违约：$ticket_id $metric",
        "before_due": "SLA 即将到期：$ticket_id $metric，截止 $due_at",
        "stopped_breached": "SLA 违约结束：$ticket_id $metric",
        "resolve": "SLA 计时已停止：$ticket_id $metric",
        "slo": "SLO 告警 $alert：$slo_id",
        "report.published": "服务级别报告已发布：$label（修订 $revision）",
        "correction": "SLA 更正：$ticket_id $metric",
    },
}
LABELS: dict[Language, dict[str, str]] = {
    "en": {
        "ticket": "Ticket",
        "metric": "Metric",
        "priority": "Priority",
        "service": "Service",
        "customer": "Customer",
        "due": "Due",
        "remaining": "Remaining",
        "elapsed": "Elapsed",
        "percent": "Used",
        "as_of": "as of",
        "level": "Escalation level",
        "link": "Explained clock",
        "slo": "SLO",
        "burn_rate": "Burn rate",
        "ack": "Acknowledge",
        "period": "Period",
        "revision": "Revision",
        "report": "Report",
        "corrects": "Corrects",
        "retracted": "Retracted",
        "breached": "Breached",
        "state": "State",
        "yes": "yes",
        "no": "no",
        "late": "Late by",
    },
    "zh-CN": {
        "ticket": "工单",
        "metric": "指标",
        "priority": "优先级",
        "service": "服务",
        "customer": "客户",
        "due": "截止时间",
        "remaining": "剩余",
        "elapsed": "已用",
        "percent": "已用比例",
        "as_of": "截至",
        "level": "升级级别",
        "link": "时钟详情",
        "slo": "SLO",
        "burn_rate": "消耗速率",
        "ack": "确认",
        "period": "周期",
        "revision": "修订",
        "report": "报告",
        "corrects": "更正",
        "retracted": "已撤回",
        "breached": "违约",
        "state": "状态",
        "yes": "是",
        "no": "否",
        "late": "延迟",
    },
}


@dataclass(frozen=True)
class Message:
    title: str
    fields: tuple[tuple[str, str], ...]  # (label, value) in display order
    link: str | None
    link_label: str
    severity: str  # critical | warning | info: PagerDuty's and Alertmanager's vocabulary
    ack_link: str | None = None  # a signed link that stops the ladder (reporting.notifications.ack_links)
    ack_label: str = "Acknowledge"

    @property
    def text(self) -> str:
        lines = [self.title, *(f"{label}: {value}" if label else value for label, value in self.fields)]
        if self.link:
            lines.append(f"{self.link_label}: {self.link}")
        if self.ack_link:
            lines.append(f"{self.ack_label}: {self.ack_link}")
        return "\n".join(lines)


def duration_text(seconds: int, language: Language) -> str:
    """`-1h 05m` / `-1小时05分`: a negative remaining time is time over target."""
    sign = "-" if seconds < 0 else ""
    minutes = abs(seconds) // 60
    hours, minutes = divmod(minutes, 60)
    if language == "zh-CN":
        return f"{sign}{hours}小时{minutes:02d}分" if hours else f"{sign}{minutes}分"
    return f"{sign}{hours}h {minutes:02d}m" if hours else f"{sign}{minutes}m"


def compose(
    values: dict[str, str],
    fields: list[tuple[str, str]],
    kind: str,
    language: Language,
    override: Templates | None,
    link: str | None,
    severity: str,
    ack_link: str | None = None,
) -> Message:
    """`values`: the placeholders; `fields`: (label key, value) pairs; `kind`: warning, breached,
    stopped_breached, resolve or slo."""
    labels = LABELS[language]
    # Every name a template may use has a value ("-" when this notification has none): the policy's
    # validation refused any other name, and safe_substitute leaves a stray `$` of an older policy as it is.
    values = dict.fromkeys(TEMPLATE_NAMES, "-") | values
    title = Template(override.title if override and override.title else TITLES[language][kind]).safe_substitute(values)
    shown = tuple((labels.get(key, key), value) for key, value in fields)
    if override and override.text:
        shown = (("", Template(override.text).safe_substitute(values)), *shown)
    link_label = labels["report"] if kind == REPORT_PUBLISHED else labels["link"]
    return Message(title, shown, link, link_label, severity, ack_link, labels["ack"])


def when(instant: datetime | None, timezone_name: str) -> str:
    if instant is None:
        return "-"
    return instant.astimezone(ZoneInfo(timezone_name)).isoformat(timespec="minutes")


def _corrected(correction: dict[str, Any], language: Language, timezone_name: str) -> list[tuple[str, str]]:
    """`before -> after` of each figure a recalculation changed in what was sent."""
    labels = LABELS[language]
    before, after = correction["before"], correction["after"]

    def shown(key: str, value: Any) -> str:
        if key == "breached":
            return labels["yes" if value else "no"]
        if key == "due_at":
            return when(datetime.fromisoformat(value), timezone_name) if value else "-"
        return str(value)

    fields = [("corrects", str(correction["corrects"]))]
    for key in correction["changed"]:
        if key == "retracted":
            fields.append(("retracted", str(correction["corrects"])))
        else:
            fields.append(({"due_at": "due"}.get(key, key), f"{shown(key, before[key])} → {shown(key, after[key])}"))
    return fields


def notification_message(
    trigger: str,
    level: int,
    facts: dict[str, object],
    values: Values | None,
    language: Language,
    override: Templates | None,
    link: str | None,
    timezone_name: str,
    ack_link: str | None = None,
) -> Message:
    """The message of one notification: `facts` is the event's data as planned, `values` the clock's figures
    for the sending instant (None for an SLO alert or a clock no longer in the read model)."""
    kind = "slo" if trigger.startswith("slo:") else trigger.split(":")[0]
    text = {k: str(v) for k, v in facts.items() if v is not None and not isinstance(v, dict | list)}
    text["trigger"] = trigger
    text["link"] = link or ""
    text["level"] = str(level)
    fields: list[tuple[str, str]] = []
    if kind == REPORT_PUBLISHED:
        fields += [
            ("period", text.get("label", "")),
            ("revision", text.get("revision", "0")),
            ("service", text.get("service", "*")),
            ("customer", text.get("customer", "*")),
            ("report", text.get("report_id", "")),
        ]
        severity = "info"
    elif kind == "slo":
        fields += [
            ("slo", text.get("slo_id", "")),
            ("service", text.get("service", "")),
            ("burn_rate", text.get("burn_rate", "-")),
        ]
        severity = "critical" if facts.get("alert") == "page" else "warning"
    else:
        fields += [
            ("ticket", text.get("ticket_id", "")),
            ("metric", text.get("metric", "")),
            ("priority", text.get("priority", "")),
            ("service", text.get("service", "")),
            ("customer", text.get("customer", "")),
        ]
        if values is not None:
            text |= {
                "due_at": when(values.due_at, timezone_name),
                "remaining": duration_text(values.remaining_seconds, language),
                "percent": f"{values.percent:.1f}",
            }
            if values.due_at is not None:
                fields.append(("due", text["due_at"]))
            as_of = "" if values.exact else f" ({LABELS[language]['as_of']} {when(values.as_of, timezone_name)})"
            fields += [("remaining", text["remaining"] + as_of), ("percent", f"{values.percent:.1f} %{as_of}")]
        correction = facts.get("correction")
        if kind == CORRECTION and isinstance(correction, dict):
            fields += _corrected(correction, language, timezone_name)
        severity = {"warning": "warning", "before_due": "warning", "resolve": "info", CORRECTION: "info"}.get(
            kind, "critical"
        )
    if isinstance(late := facts.get("late_seconds"), int):
        text["late"] = duration_text(late, language)
        fields.append(("late", text["late"]))
    if level > 0:
        fields.append(("level", str(level)))
    return compose(text, fields, kind, language, override, link, severity, ack_link)
