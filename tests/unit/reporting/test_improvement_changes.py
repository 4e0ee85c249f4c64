"""Changing an improvement register entry (reporting.domain.improvements.change_entry): which status may follow
which, what the change records in the entry's history, and which fields it sets."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from reporting.domain.improvements import Entry, HistoryEntry, RequestedChange, TransitionRefused, change_entry

NOW = datetime(2026, 11, 3, 8, 30, tzinfo=UTC)
OPENED = {"at": "2026-10-02T01:00:00+00:00", "status": "open", "note": None}
OPEN = Entry("open", "li.wei", date(2026, 12, 31), (OPENED,))


def test_starting_work_on_an_open_entry_records_the_new_status_with_its_note() -> None:
    changed = change_entry(OPEN, RequestedChange(status="in_progress", note="rota drafted"), NOW)

    assert changed.recorded == HistoryEntry(NOW, "in_progress", "rota drafted")
    written = {"at": "2026-11-03T08:30:00+00:00", "status": "in_progress", "note": "rota drafted"}
    assert changed.entry == Entry("in_progress", "li.wei", date(2026, 12, 31), (OPENED, written))
    assert changed.fields == {"status": "in_progress", "history": [OPENED, written]}
    assert not changed.completed


def test_completing_an_entry_marks_it_completed_so_its_after_value_is_measured() -> None:
    changed = change_entry(OPEN, RequestedChange(status="done"), NOW)

    assert changed.entry.status == "done"
    assert changed.recorded == HistoryEntry(NOW, "done", None)
    assert changed.completed


def test_a_note_on_a_done_entry_records_it_unchanged_and_does_not_complete_it_again() -> None:
    done = Entry("done", None, None, (OPENED, {"at": "2026-10-20T04:00:00+00:00", "status": "done", "note": None}))

    changed = change_entry(done, RequestedChange(note="checked again in November"), NOW)

    assert changed.recorded == HistoryEntry(NOW, "done", "checked again in November")
    assert changed.fields["status"] == "done"
    assert len(changed.entry.history) == 3
    assert not changed.completed


def test_a_new_owner_or_due_date_alone_records_no_history_entry() -> None:
    changed = change_entry(OPEN, RequestedChange(owner="mei.chen", due=date(2027, 1, 15)), NOW)

    assert changed.recorded is None
    assert changed.fields == {"owner": "mei.chen", "due": date(2027, 1, 15)}
    assert changed.entry == Entry("open", "mei.chen", date(2027, 1, 15), (OPENED,))
    assert not changed.completed


def test_asking_for_the_status_it_has_without_a_note_changes_nothing_but_what_was_asked() -> None:
    changed = change_entry(OPEN, RequestedChange(status="open"), NOW)

    assert changed.recorded is None
    assert changed.fields == {}
    assert changed.entry == OPEN


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("proposed", "open"),
        ("proposed", "cancelled"),
        ("open", "in_progress"),
        ("open", "done"),
        ("open", "cancelled"),
        ("in_progress", "done"),
        ("in_progress", "cancelled"),
    ],
)
def test_the_allowed_transitions(current: str, new: str) -> None:
    changed = change_entry(Entry(current, None, None, ()), RequestedChange(status=new), NOW)

    assert changed.entry.status == new
    assert changed.recorded == HistoryEntry(NOW, new, None)


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        ("proposed", "in_progress", "cancelled, open"),
        ("proposed", "done", "cancelled, open"),
        ("open", "proposed", "cancelled, done, in_progress"),
        ("in_progress", "open", "cancelled, done"),
        ("done", "open", "none (final)"),
        ("cancelled", "in_progress", "none (final)"),
    ],
)
def test_the_refused_transitions_name_what_is_allowed(current: str, new: str, allowed: str) -> None:
    with pytest.raises(TransitionRefused) as refused:
        change_entry(Entry(current, None, None, ()), RequestedChange(status=new, note="why not"), NOW)

    assert str(refused.value) == f"an entry {current!r} cannot become {new!r}; allowed: {allowed}"
