"""The upstream webhook sender: delivers the workload's batches to intake, retrying as a real sender does.

A 5xx, a 429, a timeout or a refused connection is retried (honouring Retry-After) against the next intake
instance until intake acknowledges; an event counts as acknowledged once intake answered 202 with
`accepted` or `duplicate` for it. Nothing else is retried: a 4xx is the sender's own bug and is recorded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from tests.faults.workload import Workload

BATCH_HEADERS = {"Content-Type": "application/cloudevents-batch+json"}
RETRIED_STATUSES = {429, 500, 502, 503, 504}


@dataclass
class SenderRecord:
    acknowledged: dict[str, datetime] = field(default_factory=dict)  # event id -> when intake first acknowledged it
    rejected: dict[str, str] = field(default_factory=dict)  # event id -> reason
    retries_by_cause: dict[str, int] = field(default_factory=dict)
    refused_batches: list[str] = field(default_factory=list)  # non-retried 4xx answers

    def retried(self, cause: str) -> None:
        self.retries_by_cause[cause] = self.retries_by_cause.get(cause, 0) + 1


class UpstreamSender:
    def __init__(self, intake_urls: list[str], key: str, tenant: str) -> None:
        self._urls = intake_urls
        self._tenant = tenant
        self._headers = {"Authorization": f"Bearer {key}", **BATCH_HEADERS}
        self.record = SenderRecord()
        self._turn = 0

    async def send(self, workload: Workload, over_seconds: float) -> SenderRecord:
        """Every batch in order, paced to spread over `over_seconds` (0: as fast as intake takes them)."""
        began = time.monotonic()
        pace = over_seconds / max(1, len(workload.batches))
        async with httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=3.0)) as client:
            for index in range(len(workload.batches)):
                await self._deliver(client, workload, index)
                ahead = began + pace * (index + 1) - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        return self.record

    async def _deliver(self, client: httpx.AsyncClient, workload: Workload, index: int) -> None:
        batch = workload.batch_for(index, self._tenant)
        backoff = 0.2
        while True:
            url = self._urls[self._turn % len(self._urls)]
            self._turn += 1
            try:
                answer = await client.post(f"{url}/v1/events", json=batch, headers=self._headers)
            except httpx.HTTPError as error:
                self.record.retried(type(error).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if answer.status_code in RETRIED_STATUSES:
                self.record.retried(str(answer.status_code))
                retry_after = answer.headers.get("Retry-After", "")
                await asyncio.sleep(float(retry_after) if retry_after.isdigit() else backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if answer.status_code != 202:
                self.record.refused_batches.append(f"{answer.status_code}: {answer.text[:200]}")
                return
            now = datetime.now(UTC)
            for event, result in zip(batch, answer.json()["results"], strict=True):
                if result["result"] in ("accepted", "duplicate"):
                    self.record.acknowledged.setdefault(event["id"], now)
                else:
                    self.record.rejected[event["id"]] = str(result.get("reason"))
            return
