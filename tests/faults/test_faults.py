"""The short fault run (a few minutes): its findings must show every invariant holding.

Excluded from a plain `pytest` run (see conftest.py); `make faults` runs it, CI as its own step.
"""

from __future__ import annotations

import sys

import pytest

from tests.faults.harness import SHORT, run

# About 10 minutes on an idle 2-core machine; far more when other work shares it.
pytestmark = [pytest.mark.faults, pytest.mark.timeout(2400)]

SIGKILLED_READY_SECONDS = 15.0
DEPENDENCY_READY_SECONDS = 10.0


async def test_under_faults_nothing_is_lost_or_doubled_and_the_end_state_equals_a_clean_run() -> None:
    result = await run(SHORT)
    sys.stdout.write(result.describe() + "\n")
    findings = result.findings
    assert findings.lost == []
    assert findings.duplicated == []
    assert findings.id_collisions == []
    assert findings.order_violations == []
    assert findings.rejected == {}
    assert findings.clock_mismatches == []
    assert findings.final_mismatches == []
    assert findings.slo_mismatches == []
    assert findings.report_differences == []
    assert findings.timers_expected > 0  # the workload placed breaches inside the faults
    assert (findings.timers_missing, findings.timers_twice, findings.timers_early) == ([], [], [])
    assert [o.kind for o in result.outcomes if not o.recovered] == []
    for outcome in result.outcomes:
        assert outcome.time_to_ready is not None
        if outcome.kind == "SIGKILL service":
            assert outcome.time_to_ready <= SIGKILLED_READY_SECONDS, outcome
        if outcome.target in ("kafka", "postgresql", "postgresql proxy"):
            assert outcome.time_to_ready <= DEPENDENCY_READY_SECONDS, outcome
