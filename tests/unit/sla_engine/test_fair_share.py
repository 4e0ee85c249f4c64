"""The reconcile loop's fair share of evaluation time across tenants (sla_engine.clocks.fair_share)."""

from __future__ import annotations

from sla_engine.clocks.fair_share import FORGET_AFTER_ROUNDS, FairShare

COST = {"expensive": 0.5, "cheap": 0.01}


def run_round(share: FairShare, work: list[tuple[str, str]], budget: float) -> list[str]:
    """Take items until `budget` seconds are spent, charging each tenant its (simulated) cost."""
    spent, taken = 0.0, list[str]()
    for tenant, item in share.schedule(work):
        if taken and spent >= budget:
            break
        taken.append(item)
        share.charge(tenant, COST[tenant])
        spent += COST[tenant]
    return taken


def test_a_cheap_tenant_behind_an_expensive_ones_backlog_is_served_in_the_next_round() -> None:
    share = FairShare()
    backlog = [("expensive", f"E{n}") for n in range(20)]
    cheap = [("cheap", f"C{n}") for n in range(20)]

    first = run_round(share, backlog + cheap, budget=0.5)
    second = run_round(share, backlog[1:] + cheap, budget=0.5)

    # The earliest due ticket goes first and spends the round's budget; in the next round the cheap tenant gets
    # the same time, which is all of its twenty tickets, before the expensive tenant's second ticket.
    assert first == ["E0"]
    assert second == [f"C{n}" for n in range(20)] + ["E1"]


def test_each_tenant_keeps_its_own_order_and_equal_costs_alternate() -> None:
    share = FairShare()
    work = [("cheap", "a1"), ("cheap", "a2"), ("expensive", "b1")]
    taken: list[str] = []
    for tenant, item in share.schedule(work):
        taken.append(item)
        share.charge(tenant, 1.0)
    assert taken == ["a1", "b1", "a2"]


def test_usage_carries_over_rounds_relative_to_the_least_and_long_absent_tenants_are_forgotten() -> None:
    share = FairShare()
    share.charge("expensive", 5.0)
    share.charge("cheap", 1.0)
    share.start_round(["expensive", "cheap"])
    assert share.used == {"expensive": 4.0, "cheap": 0.0}

    # Absent from a few rounds (its tickets were in the other round in flight): it keeps its standing.
    for _ in range(3):
        share.start_round(["expensive"])
    share.start_round(["expensive", "cheap"])
    assert share.used == {"expensive": 4.0, "cheap": 0.0}

    # Nothing due for longer: it comes back level, not owed the time it did not use.
    for _ in range(FORGET_AFTER_ROUNDS + 1):
        share.start_round(["expensive"])
    share.start_round(["expensive", "cheap"])
    assert share.used == {"expensive": 0.0, "cheap": 0.0}


def test_an_empty_round_in_flight_leaves_the_share_as_it_was() -> None:
    """Two rounds run at once; the second found every due ticket locked by the first. CI caught the old
    `start_round([])` wiping the share: every round then began with a tie the backlog's earliest ticket won, and
    the cheap tenant waited for the whole backlog."""
    share = FairShare()
    backlog = [("expensive", f"E{n}") for n in range(20)]
    cheap = [("cheap", f"C{n}") for n in range(20)]

    assert run_round(share, backlog + cheap, budget=0.5) == ["E0"]
    assert run_round(share, [], budget=0.5) == []
    assert run_round(share, backlog[1:] + cheap, budget=0.5) == [f"C{n}" for n in range(20)] + ["E1"]


def test_a_tenant_arriving_behind_a_backlog_starts_level_and_catches_up_in_the_next_round() -> None:
    share = FairShare()
    backlog = [("expensive", f"E{n}") for n in range(200)]
    assert run_round(share, backlog, budget=0.5) == ["E0"]
    assert run_round(share, backlog[1:], budget=0.5) == ["E1"]
    cheap = [("cheap", f"C{n}") for n in range(10)]
    # The newcomer starts level with the backlog's tenant and was never served: it goes first, once.
    assert run_round(share, [*backlog[2:22], *cheap], budget=0.5) == ["C0", "E2"]
    # Then it gets the time the backlog's ticket took: the rest of its tickets, before the backlog's next.
    assert run_round(share, [*backlog[3:23], *cheap[1:]], budget=0.5) == [f"C{n}" for n in range(1, 10)] + ["E3"]
