"""The kit's one event type -> topic map: complete, pointing only at declared topics, and as DESIGN.md section 2
names the pairs."""

from __future__ import annotations

from slm_shared import topics
from slm_shared.events import DATA_MODELS


def test_every_event_type_of_the_contract_has_a_declared_topic() -> None:
    assert set(topics.TOPIC_OF) == set(DATA_MODELS)
    assert set(topics.TOPIC_OF.values()) <= set(topics.ALL_TOPICS)


def test_the_pairs_are_those_of_the_design() -> None:
    # Written out from DESIGN.md section 2 (and the two extensions), not read from the map.
    assert dict(topics.TOPIC_OF) == {
        "itsm.ticket.v1": "itsm.tickets.v1",
        "itsm.availability.v1": "itsm.signals.v1",
        "itsm.measurement.v1": "itsm.signals.v1",
        "itsm.maintenance.v1": "itsm.signals.v1",
        "itsm.feedback.v1": "itsm.feedback.v1",
        "sla.clock.v1": "sla.clocks.v1",
        "slo.status.v1": "slo.status.v1",
        "slo.alert.v1": "slo.alerts.v1",
        "report.published.v1": "reports.v1",
        "tenant.apikey.v1": "itsm.tenants.v1",
        "sla.calendar.v1": "sla.calendars.v1",
    }
