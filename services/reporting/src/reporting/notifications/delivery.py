"""The notification delivery loop: claim due notifications, check them again, send, record the outcome.

A pass (the kit's periodic task, every `notification_poll_seconds`) finds the tenants with due rows and starts a
lane for each, a few side by side (`run_pass`), each isolated (`for_each_isolated`): one tenant's broken policy,
failing rows or hanging receiver never stops nor holds up the others. Per tenant, batches of due rows are
claimed with `FOR UPDATE SKIP LOCKED` in one transaction that also records their outcomes, so two replicas never
send the same row, and a replica that dies mid-batch leaves its rows pending for the next pass (at-least-once;
the webhook id and PagerDuty dedup key let a receiver drop the repeat).

At sending time each row is checked again against the read model, in the same transaction: a warning or breach whose
clock was answered, paused or stopped meanwhile is `suppressed` (and logged), a lead-time notification whose due
instant moved, an SLO alert resolved meanwhile, an acknowledged ladder too; the clock's figures are computed for the
sending instant in the clock's working time (the live report's calendars and arithmetic). A failed send is retried
with exponential backoff and jitter (`retry_delay`), `dead` after `notification_max_attempts`. A sent last level of
a repeating ladder plans its next repeat in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram

from reporting.domain.messages import notification_message
from reporting.domain.notification_policy import REPORT_PUBLISHED, NotificationPolicy
from reporting.domain.notification_sending import ClockNow, retry_delay, still_holds, values_at
from reporting.domain.notifications import CORRECTION, Planned, repeat_after
from reporting.notifications.channels import Delivery, DeliveryFailed, Senders
from reporting.notifications.deliveries import cycle_of
from reporting.notifications.planned_rows import new_id
from slm_shared.background import BACKGROUND_FAILURES, for_each_isolated
from slm_shared.logging import log_context
from slm_shared.ratelimit import RateLimiter

if TYPE_CHECKING:
    from collections.abc import Callable

    from reporting.domain.live import Calendars
    from reporting.notifications.ack_links import AckLinks
    from reporting.notifications.policies import PolicyStore, StoredPolicy
    from reporting.settings import ReportingSettings
    from reporting.unit_of_work import Units
    from slm_shared.time_source import Now

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "slm_notifications_total",
    "Notifications by channel type and outcome (sent, failed: will be retried, dead, suppressed)",
    ["channel", "outcome"],
)
LATENESS = Histogram(
    "slm_notification_lateness_seconds",
    "Seconds from when a notification was due to when its channel took it",
    ["channel"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
TENANTS_IN_PARALLEL = 4
BATCHES_PER_LANE = 20


class NotificationDelivery:
    def __init__(
        self,
        units: Units,
        store: PolicyStore,
        senders: Senders,
        now: Now,
        settings: ReportingSettings,
        jitter: Callable[[], float] = random.random,
        ack_links: AckLinks | None = None,
    ) -> None:
        self._units = units
        self._store = store
        self._senders = senders
        self._now = now
        self._settings = settings
        self._jitter = jitter
        self._ack_links = ack_links
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._rate = RateLimiter(
            settings.notification_channel_rate_per_second,
            burst=max(1, int(settings.notification_channel_rate_per_second)),
        )

    async def run_pass(self) -> int:
        """Starts a lane for each tenant with due rows that has none running, most overdue first, up to
        `TENANTS_IN_PARALLEL` lanes (each holds a database connection while it sends); returns how many it
        started. A lane delivers its tenant's due rows, at most `BATCHES_PER_LANE` batches, then frees its place,
        so a busy tenant cannot keep the others waiting and a tenant whose receiver hangs until the timeout
        delays only its own notifications. The pass does not wait for the lanes: the next one starts lanes for
        tenants that became due meanwhile."""
        async with self._units() as uow:
            overdue = await uow.deliveries.overdue_tenants(self._now())
        started = 0
        for tenant in overdue:
            if tenant in self._lanes or len(self._lanes) >= TENANTS_IN_PARALLEL:
                continue
            lane = asyncio.create_task(self._lane(tenant), name=f"notifications of {tenant}")
            self._lanes[tenant] = lane
            lane.add_done_callback(partial(self._lane_ended, tenant))
            started += 1
        return started

    def _lane_ended(self, tenant: str, _: asyncio.Task[None]) -> None:
        self._lanes.pop(tenant, None)

    async def _lane(self, tenant: str) -> None:
        try:
            # The kit's isolation: a failure of this tenant's is logged and counted, never anyone else's.
            await for_each_isolated(
                "delivering notifications", [tenant], self.deliver_tenant, describe=lambda tenant: f"tenant {tenant}"
            )
        except Exception as error:  # an outage: the next pass tries again
            BACKGROUND_FAILURES.labels("delivering notifications").inc()
            log.warning("delivering notifications of %s stopped: %r", tenant, error)

    async def drain(self) -> None:
        """Waits for the running lanes (at shutdown, after the loop stopped starting new ones)."""
        await asyncio.gather(*self._lanes.values(), return_exceptions=True)

    async def deliver_tenant(self, tenant: str, batches: int | None = None) -> int:
        """The tenant's due rows, at most `batches` batches (`BATCHES_PER_LANE` by default), claimed by
        `notification_batches_in_flight` workers side by side: each claims its own batch (SKIP LOCKED keeps them
        apart), so one batch's database round trips and commit overlap another's sends instead of the
        receiver and the database taking turns."""
        left = batches or BATCHES_PER_LANE

        async def worker() -> int:
            nonlocal left
            total = 0
            while left > 0:
                left -= 1
                count = await self._batch(tenant)
                total += count
                if count < self._settings.notification_batch:
                    break
            return total

        return sum(
            await asyncio.gather(*(worker() for _ in range(min(left, self._settings.notification_batches_in_flight))))
        )

    async def _batch(self, tenant: str) -> int:
        async with self._units() as uow:
            deliveries = uow.deliveries
            now = self._now()
            rows = await deliveries.claim_due(tenant, now, self._settings.notification_batch)
            if not rows:
                return 0
            stored = (await uow.policies.latest([tenant])).get(tenant)
            clocks = await deliveries.clocks_now(tenant, rows)
            # The running clocks' calendars, for their figures at the sending instant (as the live report).
            calendars = await deliveries.calendars(
                tenant, [clock.calendar_key for clock in clocks.values() if clock.state == "running"]
            )
            acked = await deliveries.acked_ladders(tenant, rows)
            resolved = await deliveries.alerts_resolved(tenant, rows)
            paged = await deliveries.paged_cycles(tenant, rows)
            semaphore = asyncio.Semaphore(self._settings.notification_concurrency)
            # Each channel's secret decrypted once per batch, not once per row (Fernet's HMAC and AES).
            secrets = (
                {channel.name: self._store.secret(stored.document, channel.name) for channel in stored.policy.channels}
                if stored
                else {}
            )

            async def settle(row: dict[str, Any]) -> dict[str, Any]:
                async with semaphore:
                    return await self._settle(row, stored, clocks, calendars, acked, paged, resolved, now, secrets)

            updates = await asyncio.gather(*(settle(row) for row in rows))
            await deliveries.record_outcomes(updates)
            repeats = [
                repeat
                for row, update in zip(rows, updates, strict=True)
                if update["b_status"] == "sent" and stored is not None and row["ladder_key"] not in acked
                for repeat in [_repeat(stored, row, now)]
                if repeat is not None
            ]
            await deliveries.add_repeats(repeats)
            await uow.commit()
        return len(rows)

    async def _settle(
        self,
        row: dict[str, Any],
        stored: StoredPolicy | None,
        clocks: dict[tuple[Any, ...], ClockNow],
        calendars: Calendars,
        acked: set[str],
        paged: set[tuple[Any, ...]],
        resolved: dict[tuple[str, str], datetime],
        now: datetime,
        secrets: dict[str, str | None],
    ) -> dict[str, Any]:
        """Sends one row (or decides not to); returns its update."""
        update = {
            "b_id": row["id"],
            "b_status": "sent",
            "b_attempts": row["attempts"],
            "b_next": row["next_attempt_at"],
            "b_error": row["last_error"],
            "b_reason": None,
            "b_sent": None,
        }
        with log_context(tenant=row["tenant_id"], ticket_id=row["ticket_id"]):
            clock = clocks.get(cycle_of(row))
            channel = stored.policy.channel(row["channel"]) if stored else None
            rule = stored.policy.rule(row["rule_id"]) if stored else None
            reason = (
                "acknowledged"
                if row["ladder_key"] in acked and row["trigger"] != "resolve"
                else "the rule or its channel is no longer in the policy"
                if channel is None or rule is None
                else "nothing was paged for this cycle"
                if row["trigger"] == "resolve" and (*cycle_of(row), row["rule_id"]) not in paged
                else still_holds(
                    row["trigger"],
                    clock,
                    _planned_due(row),
                    resolved.get((row["slo_id"], row["trigger"].removeprefix("slo:"))),
                    row["event_at"],
                )
            )
            if reason is not None:
                NOTIFICATIONS.labels(channel.type if channel else "unknown", "suppressed").inc()
                log.info(
                    "notification %s (%s, level %d) suppressed: %s", row["id"], row["trigger"], row["level"], reason
                )
                return update | {"b_status": "suppressed", "b_reason": reason}
            assert stored is not None
            assert channel is not None
            assert rule is not None
            wait = self._rate.take(f"{row['tenant_id']}/{channel.name}", time.monotonic())
            if wait > 0:  # over the channel's rate: it waits, without counting as an attempt
                return update | {"b_status": row["status"], "b_next": now + timedelta(seconds=wait)}
            delivery = self._delivery(row, stored, channel.name, clock, calendars, now, secrets.get(channel.name))
            try:
                if delivery.secret is None and channel.name in stored.document["secrets"]:
                    # Never send unsigned (or unauthenticated) what was configured with a secret. Not permanent:
                    # during a rolling key change another replica holds the key, so the row is left for a retry.
                    raise DeliveryFailed("the channel's secret cannot be decrypted with this replica's keys")
                await self._senders.send(delivery, now)
            except DeliveryFailed as error:
                attempts = row["attempts"] + 1
                dead = error.permanent or attempts >= self._settings.notification_max_attempts
                NOTIFICATIONS.labels(channel.type, "dead" if dead else "failed").inc()
                log.warning(
                    "notification %s to %s failed (attempt %d%s): %s",
                    row["id"],
                    channel.name,
                    attempts,
                    ", dead" if dead else "",
                    error,
                )
                return update | {
                    "b_status": "dead" if dead else "retrying",
                    "b_attempts": attempts,
                    "b_error": str(error)[:1000],
                    "b_next": now + retry_delay(attempts, self._jitter()),
                }
            NOTIFICATIONS.labels(channel.type, "sent").inc()
            LATENESS.labels(channel.type).observe(max(0.0, (self._now() - row["due_at"]).total_seconds()))
            return update | {"b_attempts": row["attempts"] + 1, "b_sent": self._now()}

    def _delivery(
        self,
        row: dict[str, Any],
        stored: StoredPolicy,
        channel_name: str,
        clock: ClockNow | None,
        calendars: Calendars,
        now: datetime,
        secret: str | None,
    ) -> Delivery:
        policy: NotificationPolicy = stored.policy
        rule = policy.rule(row["rule_id"])
        channel = policy.channel(channel_name)
        assert rule is not None
        assert channel is not None
        language = rule.language or policy.language
        values = values_at(clock, now, calendars) if clock is not None and row["ticket_id"] else None
        link = self._clock_link(row) if row["trigger"] != REPORT_PUBLISHED else row["facts"]["links"].get("html")
        ack_link = (
            self._ack_links.link(row["id"], now)
            if self._ack_links and row["trigger"] not in ("resolve", REPORT_PUBLISHED, CORRECTION)
            else None
        )
        facts = dict(row["facts"])
        if isinstance(late := facts.get("late"), dict):
            # Received late (reporting was down or lagging): how long after it should have gone out it goes.
            facts["late_seconds"] = max(
                0, int((now - datetime.fromisoformat(late["should_have_gone_at"])).total_seconds())
            )
        message = notification_message(
            row["trigger"],
            row["level"],
            facts,
            values,
            language,
            policy.templates_for(rule, language),
            link,
            rule.calendar.timezone if rule.calendar else "UTC",
            ack_link,
        )
        data = {
            **facts,
            "notification_id": row["id"],
            "trigger": row["trigger"],
            "level": row["level"],
            "rule": row["rule_id"],
            "recipients": row["recipients"],
            "due_at": row["due_at"].isoformat(),
            "sent_at": now.isoformat(),
            "title": message.title,
            "link": link,
            "ack_link": ack_link,
        }
        if values is not None:
            data |= {
                "elapsed_seconds_now": values.elapsed_seconds,
                "remaining_seconds_now": values.remaining_seconds,
                "percent_now": values.percent,
                "values_as_of": values.as_of.isoformat(),
                "values_exact": values.exact,
            }
            if values.note is not None:
                data["values_note"] = values.note
        return Delivery(
            notification_id=row["id"],
            dedup_key=_dedup_key(row),
            trigger=row["trigger"],
            level=row["level"],
            channel=channel,
            secret=secret,
            recipients=tuple(row["recipients"]),
            message=message,
            data=data,
            event_at=row["event_at"],
        )

    def _clock_link(self, row: dict[str, Any]) -> str | None:
        # Always there for a clock: without the sla-engine's public URL configured, its path on the sla-engine.
        base = self._settings.explained_clock_base_url.rstrip("/")
        if not row["ticket_id"]:
            return None
        return f"{base}/v1/tickets/{row['ticket_id']}/clocks?at={row['event_at'].isoformat().replace('+', '%2B')}"


def _planned_due(row: dict[str, Any]) -> datetime | None:
    """The clock's due instant as the event the row was planned from stated it."""
    due = row["facts"].get("due_at")
    return datetime.fromisoformat(due) if isinstance(due, str) else None


def _dedup_key(row: dict[str, Any]) -> str:
    """One incident per (tenant, cycle or alert episode, rule): a trigger, its escalations and its resolve."""
    scope = "/".join(str(part) for part in cycle_of(row)) if row["ticket_id"] else row["ladder_key"].rsplit("/", 2)[0]
    return f"{row['tenant_id']}/{scope}/{row['rule_id']}"


def _repeat(stored: StoredPolicy, row: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    rule = stored.policy.rule(row["rule_id"])
    if rule is None:
        return None
    sent = Planned(
        key=row["idempotency_key"],
        ladder=row["ladder_key"],
        rule_id=row["rule_id"],
        trigger=row["trigger"],
        level=row["level"],
        event_at=row["event_at"],
        due_at=row["due_at"],
        channel=row["channel"],
        recipients=tuple(row["recipients"]),
    )
    following = repeat_after(rule, sent)
    if following is None:
        return None
    return {
        **{
            k: row[k]
            for k in (
                "tenant_id",
                "policy_version",
                "rule_id",
                "trigger",
                "ticket_id",
                "policy_id",
                "metric",
                "cycle",
                "slo_id",
                "facts",
                "event_at",
            )
        },
        "id": new_id(),
        "idempotency_key": following.key,
        "ladder_key": following.ladder,
        "level": following.level,
        "channel": following.channel,
        "recipients": list(following.recipients),
        "due_at": following.due_at,
        "next_attempt_at": following.due_at,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
    }
