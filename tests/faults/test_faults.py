"""The short fault run: every fault type once under a small workload; every invariant must hold.

`make test` runs it as its last step (it stops the broker and PostgreSQL every other test uses; see
conftest.py), `make faults` on its own. About 5 minutes on an idle 2-core machine. Times to ready are printed
in the table, not asserted: on a shared machine they measure the machine as much as the services.
"""

from __future__ import annotations

import sys

import pytest

from tests.faults.harness import SHORT, run
from tests.faults.infra import LocalInfra
from tests.faults.injectors import FAULT_KINDS, STOP_POSTGRES

pytestmark = [pytest.mark.faults, pytest.mark.timeout(2400)]


async def test_under_faults_nothing_is_lost_or_doubled_and_the_end_state_equals_a_clean_run() -> None:
    result = await run(SHORT)
    sys.stdout.write(result.describe() + "\n")
    findings = result.findings
    assert {name: count for name, count in findings.violations.items() if count} == {}, result.describe()
    assert findings.timers_expected > 0  # the workload placed breaches inside the faults
    # PostgreSQL is stopped only when the stack started its own (never a system server).
    expected = set(FAULT_KINDS) - (set() if LocalInfra().postgres_is_private() else {STOP_POSTGRES.kind})
    assert {outcome.kind for outcome in result.outcomes} == expected
    not_recovered = [(o.kind, o.target, o.manual_restarts, o.stuck_at) for o in result.outcomes if not o.recovered]
    assert not_recovered == []
