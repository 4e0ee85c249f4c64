"""Reading hostile bundle sources: aliases, depth, node count, unstorable text, long durations, long messages."""

from __future__ import annotations

import json

import pytest

from sla_engine.domain.bundle import BundleError, parse_bundle, parse_duration
from sla_engine.domain.bundle.openslo import import_openslo
from sla_engine.domain.bundle.source import MAX_DEPTH, MAX_MESSAGE_CHARS, MAX_NODES


def issues(text: str, content_type: str = "yaml") -> list[str]:
    with pytest.raises(BundleError) as caught:
        parse_bundle(text, content_type="json" if content_type == "json" else "yaml")
    return [issue.message for issue in caught.value.errors]


def test_aliases_are_refused_before_they_expand() -> None:
    laughs = 'a: &a ["lol","lol"]\n' + "".join(f"b{n}: &b{n} [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n" for n in range(9))
    assert issues(laughs) == ["invalid YAML: aliases (*name) are not accepted; write the value out"]
    assert "aliases" in import_openslo(laughs).errors[0]


def test_nesting_and_node_count_are_capped_while_composing() -> None:
    assert issues("policies: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)) == [
        f"invalid YAML: nested deeper than {MAX_DEPTH} levels"
    ]
    assert issues("policies:\n" + "  - 1\n" * MAX_NODES) == [
        f"invalid YAML: more than {MAX_NODES} values in one document"
    ]
    assert "nested deeper" in issues('{"policies": ' + "[" * 5000 + "]" * 5000 + "}", "json")[0]


def test_text_postgresql_cannot_store_is_an_issue_with_its_path() -> None:
    with pytest.raises(BundleError) as caught:
        parse_bundle(json.dumps({"calendars": [{"name": "a\x00", "timezone": "UTC"}]}), content_type="json")
    assert ("calendars[0].name", "text must not contain U+0000 or a lone surrogate") in [
        (issue.path, issue.message) for issue in caught.value.errors
    ]


def test_durations_have_an_upper_bound_and_short_messages() -> None:
    assert parse_duration("3660d") == 3660 * 86400
    with pytest.raises(ValueError, match="longer than 3660d"):
        parse_duration("3661d")
    with pytest.raises(ValueError, match="is not a duration") as caught:
        parse_duration("9" * 5000 + "s")
    assert len(str(caught.value)) < 200


def test_a_huge_value_is_never_echoed_whole() -> None:
    messages = issues(json.dumps({"x" * 100_000: 1}), "json")
    assert all(len(message) <= MAX_MESSAGE_CHARS for message in messages)
