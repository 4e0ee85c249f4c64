"""The printed result: one row per fault type, then the invariants the checker found broken."""

from __future__ import annotations

from collections import Counter

from tests.faults.checker import Findings, attribute, sequence
from tests.faults.injectors import FaultOutcome


def _seconds(values: list[float | None]) -> str:
    if not values:
        return "-"
    if any(v is None for v in values):
        return "never"
    return f"{max(v for v in values if v is not None):.1f}s"


def fault_table(outcomes: list[FaultOutcome], findings: Findings) -> str:
    lost = Counter(attribute(at, outcomes) for _, at in findings.lost)
    duplicated = Counter(attribute(t.produced, outcomes) for t in findings.duplicated)
    kinds = list(dict.fromkeys(o.kind for o in outcomes))
    header = (
        "fault",
        "injected",
        "recovered",
        "max to ready",
        "max to flow",
        "crashes",
        "manual",
        "lost",
        "duplicated",
    )
    rows = [header]
    for kind in [*kinds, "-"]:
        of_kind = [o for o in outcomes if o.kind == kind]
        if kind == "-" and not (lost[kind] or duplicated[kind]):
            continue
        rows.append(
            (
                kind if kind != "-" else "(between faults)",
                str(len(of_kind)),
                str(sum(o.recovered for o in of_kind)),
                _seconds([o.time_to_ready for o in of_kind]),
                _seconds([o.time_to_flow for o in of_kind]),
                str(sum(o.crash_restarts for o in of_kind)),
                str(sum(o.manual_restarts for o in of_kind)),
                str(lost[kind]),
                str(duplicated[kind]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def summary(outcomes: list[FaultOutcome], findings: Findings) -> str:
    broken = {name: count for name, count in findings.violations.items() if count}
    lines = [
        fault_table(outcomes, findings),
        "",
        f"timers due while the faults ran: {findings.timers_expected} "
        f"({findings.timers_due_in_downtime} during a downtime); missing {len(findings.timers_missing)}, "
        f"twice {len(findings.timers_twice)}, early {len(findings.timers_early)}",
        f"redelivered records (same id, absorbed by inboxes): {findings.redelivered}",
        "verdict: "
        + (
            "end state equal to the clean run, no invariant broken"
            if not broken
            else "BROKEN " + ", ".join(f"{name}={count}" for name, count in broken.items())
        ),
    ]
    lines += [
        f"not flowing after {o.kind} ({o.target}): the probe ticket was {o.stuck_at}"
        for o in outcomes
        if o.stuck_at is not None
    ]
    for name, sample in (
        ("clock mismatches", findings.clock_mismatches[:3]),
        ("final state mismatches", findings.final_mismatches[:3]),
        ("published vs engine", findings.published_vs_engine[:3]),
        ("report vs engine", findings.report_vs_engine[:3]),
        ("SLO differences", findings.slo_mismatches[:3]),
        ("report differences", findings.report_differences[:5]),
        ("timers missing", findings.timers_missing[:3]),
        ("lost", [event_id for event_id, _ in findings.lost[:3]]),
        ("duplicated", [t.key for t in findings.duplicated[:3]]),
        (
            "order violations",
            [(later.key[:3], sequence(earlier), sequence(later)) for earlier, later in findings.order_violations[:3]],
        ),
        ("rejected", list(findings.rejected.items())[:3]),
    ):
        if sample:
            lines.append(f"  e.g. {name}: {sample}")
    return "\n".join(lines)
