"""Reading a bundle's source: the document, the line of every field in it, and issues that carry lines.

YAML is read with the kit's `BoundedLoader` (slm_shared.bounded_yaml): no aliases, nesting capped at
`MAX_DEPTH`, at most `MAX_NODES` values in a document. Issue messages are cut at `MAX_MESSAGE_CHARS`, so a
huge value is never echoed back whole.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

import yaml

from sla_engine.domain.bundle.model import BundleIssue
from slm_shared.bounded_yaml import MAX_DEPTH as MAX_DEPTH  # re-exported: the bounds the bundle tests name
from slm_shared.bounded_yaml import MAX_NODES as MAX_NODES
from slm_shared.bounded_yaml import BoundedLoader

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

MAX_MESSAGE_CHARS = 300
MAX_ISSUES = 200


def load_all(text: str) -> list[Any]:
    """Every document of a multi-document YAML stream, read with `BoundedLoader` (raises `yaml.YAMLError`)."""
    loader = BoundedLoader(text)
    try:
        documents: list[Any] = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            documents.append(loader.get_data())
        return documents
    finally:
        loader.dispose()


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """At most `limit` characters of valid UTF-8 (a lone surrogate in a key or value becomes `?`)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def join_path(path: str, key: object) -> str:
    """`policies` + 0 -> `policies[0]`; `policies[0]` + `id` -> `policies[0].id`."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def load(text: str, content_type: Literal["yaml", "json"]) -> tuple[Any, dict[str, int], list[BundleIssue]]:
    """The document, the line of every path in it, and syntax or duplicate-key issues."""
    lines: dict[str, int] = {}
    issues: list[BundleIssue] = []
    if content_type == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            return None, lines, [BundleIssue("", error.lineno, f"invalid JSON: {error.msg}")]
        except RecursionError:
            return None, lines, [BundleIssue("", None, f"invalid JSON: nested deeper than {MAX_DEPTH} levels")]
        try:
            node = yaml.compose(text, Loader=BoundedLoader)
        except yaml.YAMLError:
            node = None  # JSON that PyYAML's YAML 1.1 reader refuses: valid, only without line numbers
        if node is not None:
            _walk(node, "", lines, issues, 0)
        return data, lines, issues + unstorable_text(data, lines)
    loader = BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _walk(node, "", lines, issues, 0)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        return (
            None,
            lines,
            [BundleIssue("", mark.line + 1 if mark else None, shorten(f"invalid YAML: {error.problem}"))],
        )
    except yaml.YAMLError as error:
        return None, lines, [BundleIssue("", None, shorten(f"invalid YAML: {error}"))]
    finally:
        loader.dispose()
    return data, lines, issues + unstorable_text(data, lines)


def unstorable_text(data: Any, lines: dict[str, int]) -> list[BundleIssue]:
    """Keys and strings PostgreSQL cannot store (the bundle is kept as JSON): U+0000 and lone surrogates."""
    issues: list[BundleIssue] = []
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack and len(issues) < MAX_ISSUES:
        value, path = stack.pop()
        if isinstance(value, dict):
            stack.extend((key, join_path(path, "<key>")) for key in value)
            stack.extend((item, join_path(path, key)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, join_path(path, position)) for position, item in enumerate(value))
        elif isinstance(value, str) and not _storable(value):
            issues.append(
                BundleIssue(shorten(path, 200), lines.get(path), "text must not contain U+0000 or a lone surrogate")
            )
    return issues


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _walk(node: yaml.Node, path: str, lines: dict[str, int], issues: list[BundleIssue], depth: int) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if depth > 64:
        return  # a self-referencing alias; the validator reports the shape
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = join_path(path, key)
            if key in seen:
                issues.append(
                    BundleIssue(shorten(child, 200), key_node.start_mark.line + 1, shorten(f"duplicate key {key!r}"))
                )
            seen.add(key)
            lines.setdefault(child, key_node.start_mark.line + 1)
            _walk(value_node, child, lines, issues, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _walk(item, join_path(path, position), lines, issues, depth + 1)


class Checker:
    """Collects issues with their lines while reading a loaded document."""

    def __init__(self, lines: dict[str, int], issues: list[BundleIssue]) -> None:
        self.lines = lines
        self.issues = issues

    def error(self, path: str, message: str) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(BundleIssue(shorten(path, 200), self.line(path), shorten(message)))

    def line(self, path: str) -> int | None:
        """The path's own line, else its nearest present ancestor's (a missing key: its parent's line)."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""

    def mapping(
        self,
        value: Any,
        path: str,
        allowed: Sequence[str],
        required: Sequence[str] = (),
        extra: Callable[[str], bool] | None = None,
    ) -> dict[Any, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, not {kind_of(value)}")
            return None
        for key in value:
            if key not in allowed and not (extra is not None and isinstance(key, str) and extra(key)):
                self.error(join_path(path, key), f"unknown key {key!r}; expected one of: {', '.join(allowed)}")
        for key in required:
            if key not in value or value[key] is None:
                self.error(join_path(path, key), "is required")
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list, not {kind_of(value)}")
            return []
        return value

    def text(self, value: Any, path: str) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        hint = " (quote it in YAML)" if isinstance(value, bool | int | float | date) else ""
        self.error(path, f"must be a non-empty string, not {kind_of(value)}{hint}")
        return None

    def choices(self, value: Any, path: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
        """A list of canonical values (duplicates dropped, order kept)."""
        chosen: list[str] = []
        for position, item in enumerate(self.sequence(value, path)):
            item_path = join_path(path, position)
            if not isinstance(item, str) or item not in allowed:
                self.error(item_path, f"{item!r} is not a canonical {what}; expected one of: {', '.join(allowed)}")
            elif item not in chosen:
                chosen.append(item)
        return tuple(chosen)


def kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__
