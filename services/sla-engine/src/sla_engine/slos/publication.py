"""The SLO events the engine publishes: `slo.status.v1` when a status changed, `slo.alert.v1` when an alert fires
or resolves, and how a stored status is compared with a new one."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from slm_shared import topics
from slm_shared.events import SLO_ALERT_EVENT, SLO_STATUS_EVENT, SloAlertData, SloStatusData, make_event
from slm_shared.outbox import OutgoingEvent

if TYPE_CHECKING:
    from datetime import datetime

    from sla_engine.domain.slo.alerts import AlertName, AlertTransition
    from sla_engine.domain.slo.definition import SloDefinition
    from sla_engine.domain.slo.evaluation import SloStatus

SOURCE = "slm://sla-engine"


def status_data(status: SloStatus) -> SloStatusData:
    """`slo.status.v1`: `sli_value` and `objective` in percent; budgets in the SLI's unit (seconds or events)."""
    return SloStatusData(
        slo_id=status.slo_id,
        service=status.service,
        window_start=status.window_start,
        window_end=status.window_end,
        sli_value=None if status.sli_value is None else float(status.sli_value * 100),
        objective=float(status.objective),
        good=float(status.good),
        total=float(status.total),
        error_budget_total=float(status.error_budget_total),
        error_budget_remaining=float(status.error_budget_remaining),
        burn_rates={name: None if rate is None else float(rate) for name, rate in status.burn_rates().items()},
    )


def comparable_status(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """A status without its window bounds: a rolling window moves every second without anything changing."""
    if payload is None:
        return None
    return {key: value for key, value in payload.items() if key not in ("window_start", "window_end")}


def alert_names(names: frozenset[str]) -> frozenset[AlertName]:
    known: tuple[AlertName, ...] = ("page", "ticket", "budget_exhausted", "no_data")
    return frozenset(name for name in known if name in names)


def status_event(tenant_id: str, slo: SloDefinition, payload: dict[str, Any], now: datetime) -> OutgoingEvent:
    event = make_event(
        event_id=f"{slo.id}:status@{now.isoformat()}",
        source=SOURCE,
        event_type=SLO_STATUS_EVENT,
        time=now,
        tenant_id=tenant_id,
        subject=slo.service,
        data=SloStatusData.model_validate(payload),
    )
    return OutgoingEvent(topic=topics.SLO_STATUS, key=topics.service_key(tenant_id, slo.service), event=event)


def alert_event(tenant_id: str, slo: SloDefinition, transition: AlertTransition, now: datetime) -> OutgoingEvent:
    data = SloAlertData(
        slo_id=slo.id,
        alert=transition.alert,
        state=transition.state,
        burn_rate=None if transition.burn_rate is None else float(transition.burn_rate),
        windows={key: _json(value) for key, value in transition.windows.items()},
    )
    event = make_event(
        event_id=f"{slo.id}:{transition.alert}:{transition.state}@{now.isoformat()}",
        source=SOURCE,
        event_type=SLO_ALERT_EVENT,
        time=now,
        tenant_id=tenant_id,
        subject=slo.service,
        data=data,
    )
    return OutgoingEvent(topic=topics.SLO_ALERTS, key=topics.service_key(tenant_id, slo.service), event=event)


def _json(value: object) -> str | int | float | None:
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)
