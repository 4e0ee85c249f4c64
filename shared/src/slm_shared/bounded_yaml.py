"""YAML from clients, read safely: the one loader every service uses for configuration it accepts over HTTP.

Aliases (`*name`) are refused, because PyYAML walks an alias as if the anchored value were copied there (a few
hundred bytes of nested aliases is a "billion laughs" that takes seconds and gigabytes); nesting is capped at
`MAX_DEPTH` (the composer recurses) and a document holds at most `max_nodes` values, counted while composing.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 64
MAX_NODES = 200_000  # a 1,000-policy SLA bundle of 2-3 metrics is ~108,000 values (bench/engine_scale)


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases, with a depth and a node budget counted while composing."""

    max_depth = MAX_DEPTH
    max_nodes = MAX_NODES

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._refuse("aliases (*name) are not accepted; write the value out")
        self._nodes += 1
        if self._nodes > self.max_nodes:
            self._refuse(f"more than {self.max_nodes} values in one document")
        if self._depth >= self.max_depth:
            self._refuse(f"nested deeper than {self.max_depth} levels")
        self._depth += 1
        try:
            node: yaml.Node | None = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node

    def _refuse(self, problem: str) -> None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        raise yaml.composer.ComposerError(None, None, problem, mark)


def load_one(text: str) -> Any:
    """The single document of `text` (raises `yaml.YAMLError`, also for a stream of several)."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
