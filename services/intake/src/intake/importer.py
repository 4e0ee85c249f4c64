"""`slm-intake import`: a vendor's history export -> one canonical snapshot per change, through intake's rules.

Reads the export (a JSON document, a JSON Lines file with one ticket or one page a line, or a directory of
them), rebuilds each ticket's changes as the webhook payloads they would have been (`intake.domain.history`),
maps them with the tenant's mapping and the same adapters as the webhooks, and hands them to
`EventIntake.accept_mapped`: the same acceptance rules, dedup ledger, archive and outbox as live events, in
batches of at most `max_batch_events` events, one transaction each.

Limits at the door apply here too: a ticket's export is at most `max_body_bytes` (a webhook body's limit),
a whole JSON document at most `import_max_document_bytes` (use JSON Lines beyond), every event
`max_event_bytes`, every time inside the accepted range and age.

Resumable: after each committed batch the number of tickets done is written to a state file beside the
export (`<path>.import-<tenant>.json`, with the export's size); a rerun skips those tickets, and whatever
the interrupted batch had committed is a `duplicate` for the ledger. The state file is removed at the end.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from intake.domain import Rejected, parse_json
from intake.domain.adapters import ADAPTERS, Snapshot, snapshot_of
from intake.domain.history import export_records, record_payloads, record_ref
from intake.domain.mapping import System, effective_mapping

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from intake.handlers.intake import EventIntake
    from intake.ports import IntakeUnitsOfWork
    from intake.settings import IntakeSettings

log = logging.getLogger(__name__)
EXAMPLES_PER_CODE = 5


@dataclass
class ImportSummary:
    """What an import did: events imported (accepted), skipped (duplicates, resumed tickets), rejected."""

    tickets: int = 0
    imported: int = 0
    duplicate: int = 0
    resumed_tickets: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def reject(self, code: str, where: str, reason: str) -> None:
        self.rejected[code] += 1
        shown = self.examples.setdefault(code, [])
        if len(shown) < EXAMPLES_PER_CODE:
            shown.append(f"{where}: {reason}")

    def lines(self) -> list[str]:
        lines = [
            f"tickets: {self.tickets} ({self.resumed_tickets} skipped, done by an earlier run)",
            f"imported: {self.imported} events",
            f"skipped: {self.duplicate} events already in intake",
            f"rejected: {sum(self.rejected.values())} events",
        ]
        for code, count in self.rejected.most_common():
            lines.append(f"  {code}: {count}")
            lines.extend(f"    {example}" for example in self.examples.get(code, []))
        return lines


@dataclass(frozen=True)
class ExportTicket:
    """One ticket of the export with its history, or why it could not be read; `position` counts tickets."""

    position: int
    record: Any
    fault: Rejected | None = None


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl", ".ndjson") and p.is_file())
    return [path]


def read_export(system: System, path: Path, settings: IntakeSettings) -> Iterator[ExportTicket]:
    """The export's tickets in file order; a ticket over the size limits is a fault, not the end of the import."""
    position = 0
    for file in _files(path):
        if file.suffix in (".jsonl", ".ndjson"):
            with file.open("rb") as lines:
                for number, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    for ticket in _tickets(system, line, f"{file.name}:{number}", settings.max_body_bytes):
                        yield ExportTicket(position, ticket.record, ticket.fault)
                        position += 1
            continue
        size = file.stat().st_size
        if size > settings.import_max_document_bytes:
            raise SystemExit(
                f"{file}: {size} bytes is over import_max_document_bytes "
                f"({settings.import_max_document_bytes}); export as JSON Lines (one ticket a line)"
            )
        for ticket in _tickets(system, file.read_bytes(), file.name, None):
            yield ExportTicket(position, ticket.record, ticket.fault)
            position += 1


def _tickets(system: System, raw: bytes, where: str, max_bytes: int | None) -> Iterator[ExportTicket]:
    if max_bytes is not None and len(raw) > max_bytes:
        yield ExportTicket(
            0, None, Rejected("event_too_large", f"{where}: {len(raw)} bytes is over max_body_bytes ({max_bytes})")
        )
        return
    try:
        document = parse_json(raw)
    except Rejected as error:
        yield ExportTicket(0, None, Rejected(error.code, f"{where}: {error.reason}"))
        return
    for record in export_records(system, document):
        yield ExportTicket(0, record)


class HistoryImport:
    """Imports one export for one tenant; see the module docstring for the rules."""

    def __init__(self, intake: EventIntake, units: IntakeUnitsOfWork, settings: IntakeSettings) -> None:
        self._intake = intake
        self._units = units
        self._settings = settings

    async def run(
        self,
        tenant_id: str,
        system: System,
        path: Path,
        *,
        instance: str | None = None,
        account: str | None = None,
        restart: bool = False,
        progress: Callable[[int], object] | None = None,
    ) -> ImportSummary:
        async with self._units() as uow:
            override = await uow.mappings.override(tenant_id, system)
        mapping = effective_mapping(system, override)
        adapter = ADAPTERS[system]
        state_path = path.with_name(f"{path.name}.import-{tenant_id}.json")
        done = 0 if restart else _resume_point(state_path, path)
        summary = ImportSummary(resumed_tickets=done)
        snapshots: dict[str, Snapshot] = {}  # the last snapshot of each upstream ticket this import made
        batch: list[tuple[dict[str, Any] | Rejected, bytes | None]] = []
        where: list[str] = []
        position = -1
        for ticket in read_export(system, path, self._settings):
            position = ticket.position
            summary.tickets += 1
            if position < done:
                if progress is not None:
                    progress(1)
                continue
            events = self._events(system, ticket, mapping, adapter, snapshots, instance, account)
            if batch and len(batch) + len(events) > self._settings.max_batch_events:
                # A ticket's changes are never split over two transactions: a resumed import redoes whole tickets.
                await self._commit(tenant_id, system, batch, where, summary)
                _save_resume_point(state_path, path, position)
                batch, where = [], []
            batch.extend(events)
            where.extend([f"ticket #{position + 1}"] * len(events))
            if progress is not None:
                progress(1)
        if batch:
            await self._commit(tenant_id, system, batch, where, summary)
        state_path.unlink(missing_ok=True)
        log.info("import of %s for tenant %s: %s", path, tenant_id, "; ".join(summary.lines()))
        return summary

    def _events(
        self,
        system: System,
        ticket: ExportTicket,
        mapping: Any,
        adapter: Any,
        snapshots: dict[str, Snapshot],
        instance: str | None,
        account: str | None,
    ) -> list[tuple[dict[str, Any] | Rejected, bytes | None]]:
        """One ticket's canonical events in event-time order (or its fault), each with its payload's bytes."""
        if ticket.fault is not None:
            return [(ticket.fault, None)]
        try:
            payloads = record_payloads(system, ticket.record, instance=instance, account=account)
            raw_record = json.dumps(ticket.record, ensure_ascii=False).encode("utf-8")
            if len(raw_record) > self._settings.max_body_bytes:
                raise Rejected(
                    "event_too_large",
                    f"ticket: {len(raw_record)} bytes is over max_body_bytes ({self._settings.max_body_bytes})",
                )
            events: list[tuple[dict[str, Any] | Rejected, bytes | None]] = []
            ref = record_ref(system, ticket.record)
            for payload in payloads:
                raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                previous = snapshots.get(ref) if ref is not None else None
                for document in adapter.events(payload, mapping, previous):
                    events.append((document, raw))
                    if document["type"] == "itsm.ticket.v1" and ref is not None:
                        snapshots[ref] = snapshot_of(document)
            return events
        except Rejected as error:
            return [(error, None)]
        except Exception as error:  # an export this reader does not understand costs its ticket, not the import
            log.warning("ticket #%d of the %s export could not be read", ticket.position + 1, system, exc_info=True)
            return [
                (
                    Rejected(
                        "invalid_webhook", f"ticket: cannot be read as a {system} export ({type(error).__name__})"
                    ),
                    None,
                )
            ]

    async def _commit(
        self,
        tenant_id: str,
        system: System,
        batch: list[tuple[dict[str, Any] | Rejected, bytes | None]],
        where: list[str],
        summary: ImportSummary,
    ) -> None:
        for result in await self._intake.accept_mapped(tenant_id, f"import:{system}", batch):
            if result.outcome == "accepted":
                summary.imported += 1
            elif result.outcome == "duplicate":
                summary.duplicate += 1
            else:
                summary.reject(
                    result.code or "rejected", f"{where[result.index]} {result.id or ''}".strip(), result.reason or ""
                )


def _resume_point(state_path: Path, export: Path) -> int:
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    if not isinstance(state, dict) or state.get("export_bytes") != _size(export):
        return 0  # another export under the same name: start over (the ledger still skips what is known)
    done = state.get("tickets_done")
    return done if isinstance(done, int) and done >= 0 else 0


def _save_resume_point(state_path: Path, export: Path, tickets_done: int) -> None:
    temporary = state_path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"tickets_done": tickets_done, "export_bytes": _size(export)}), encoding="utf-8")
    temporary.replace(state_path)


def _size(path: Path) -> int:
    return sum(file.stat().st_size for file in _files(path))
