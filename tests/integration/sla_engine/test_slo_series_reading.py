"""Reading a series from PostgreSQL: the integer arrays, and the window's older part summed by the database,
give the same status as the rows read one by one."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine.domain.bundle import parse_bundle
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.evaluation import evaluate
from sla_engine.domain.slo.rollups import AvailabilityMinute, RatioMinute, merge_ratio
from sla_engine.domain.slo.series import availability_counts, ratio_counts
from sla_engine.slos.rollups import SqlRollupRepository
from sla_engine.slos.series import SqlSeriesRepository

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)


async def test_arrays_and_sums_read_back_the_same_status(sessions: async_sessionmaker[AsyncSession]) -> None:
    tenant = f"series-{uuid.uuid4().hex[:8]}"
    generator = random.Random(7)
    first = AT.replace(second=0) - timedelta(days=10)
    minutes = [first + timedelta(minutes=index) for index in range(10 * 1_440) if generator.random() < 0.15]
    ratios = [
        RatioMinute(minute, good, good + generator.choice([0, 0, 3]))
        for minute in minutes
        for good in [generator.randrange(100)]
    ]
    availability = [
        AvailabilityMinute(minute, up, 60 - up - down, down, 0)
        for minute in minutes
        for up in [generator.randrange(40, 61)]
        for down in [generator.randrange(61 - up)]
    ]
    # Written as the service writes them, so the day sums are kept too: the ratio minutes in two batches (the
    # second adds to minutes already stored, as late signals do), the availability minutes replaced twice
    # (the second time from an instant in the middle of a day, as a late state change does).
    late = [RatioMinute(row.minute, 1, 2) for row in ratios[::7]]
    replaced_from = first + timedelta(days=5, hours=7, minutes=13)
    changed = [AvailabilityMinute(row.minute, 0, 0, 60, 0) for row in availability if row.minute >= replaced_from]
    async with sessions() as session, session.begin():
        rollups = SqlRollupRepository(session)
        await rollups.add_ratio_minutes(tenant, "api", "requests", ratios)
        await rollups.add_ratio_minutes(tenant, "api", "requests", late)
        await rollups.replace_availability_minutes(tenant, "web", first, availability)
        await rollups.replace_availability_minutes(tenant, "web", replaced_from, changed[::2])
    ratios = merge_ratio([*ratios, *late])
    availability = [row for row in availability if row.minute < replaced_from] + changed[::2]
    ratio_slo = slo_definition(
        parse_bundle(
            "slos:\n  - {id: a, service: api, sli: {type: ratio, sli: requests}, objective: 99,"
            " window: {rolling: 7d}}\n"
        ).slos[0]
    )
    web_slo = slo_definition(
        parse_bundle(
            "slos:\n  - {id: w, service: web, sli: {type: availability, degraded_weight: 0.5}, objective: 99, "
            "window: {rolling: 7d}}\n"
        ).slos[0]
    )
    start, split = AT - timedelta(days=7), AT - timedelta(days=3)  # whole days in between, and edges
    async with sessions() as session:
        series = SqlSeriesRepository(session)
        ratio_whole = await series.ratio_series(tenant, "api", "requests", start, AT)
        ratio_ahead = await series.ratio_series(tenant, "api", "requests", start, AT, split)
        web_whole = await series.availability_series(tenant, "web", start, AT, Decimal("0.5"))
        web_ahead = await series.availability_series(tenant, "web", start, AT, Decimal("0.5"), split)
    expected = evaluate(ratio_slo, ratio_counts(ratios), AT)
    assert evaluate(ratio_slo, ratio_whole, AT) == expected
    assert evaluate(ratio_slo, ratio_ahead, AT) == expected
    assert len(ratio_ahead.minutes) < len(ratio_whole.minutes)
    expected_web = evaluate(web_slo, availability_counts(availability, Decimal("0.5")), AT)
    assert evaluate(web_slo, web_whole, AT) == expected_web
    assert evaluate(web_slo, web_ahead, AT) == expected_web
    assert expected.total > 0
    assert expected_web.total > 0
