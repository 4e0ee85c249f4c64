"""Which policies of a bundle a snapshot can match, without testing every policy.

Each policy is filed under one of its `match` keys (its anchor) and that key's wanted values: a snapshot can
only match the policy if its value of the anchor is one of them. The anchor is the key with the most distinct
values across the bundle (customer, service, group rather than kind or priority), so the candidates of a
snapshot are about the policies meant for it. A policy without `match` matches everything and is always a
candidate. Candidates are a superset of the matching policies; `Policy.matches` still decides.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # model.py builds the index, so only the type is needed here
    from collections.abc import Sequence

    from sla_engine.domain.bundle.model import Policy
    from sla_engine.domain.timeline import TicketSnapshot


class PolicyIndex:
    """Positions (in bundle order) of the policies a snapshot may match."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        distinct = Counter(
            key
            for key, _ in {
                (key, value) for policy in policies for key, wanted in policy.match.items() for value in wanted
            }
        )
        self._always: tuple[int, ...] = tuple(n for n, policy in enumerate(policies) if not policy.match)
        by_value: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for position, policy in enumerate(policies):
            if not policy.match:
                continue
            # Most distinct values in the bundle first; then fewest wanted here; then the name, for stability.
            anchor = min(policy.match, key=lambda key: (-distinct[key], len(policy.match[key]), key))
            for value in policy.match[anchor]:
                by_value[anchor][value].append(position)
        self._anchors: tuple[tuple[str, dict[str, tuple[int, ...]]], ...] = tuple(
            (key, {value: tuple(positions) for value, positions in values.items()})
            for key, values in sorted(by_value.items())
        )

    def candidates(self, snapshot: TicketSnapshot) -> list[int]:
        """Every policy position whose anchor value the snapshot has, plus the match-all policies (unsorted)."""
        found = list(self._always)
        for key, values in self._anchors:
            value = snapshot.field_value(key)
            if value is not None:
                found.extend(values.get(value, ()))
        return found
