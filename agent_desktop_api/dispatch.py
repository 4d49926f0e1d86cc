"""Submitted tickets to the dispatch system: a signed webhook per ticket, retried until it is taken, never lost,
never sent twice on purpose.

Submitting a ticket writes its delivery in the same transaction (an outbox): whatever happens to the network or
to this process afterwards, the ticket is in the database and its delivery is pending. The sender posts due
deliveries with an `Idempotency-Key` (the same on every attempt, so the receiver can drop a repeat), a timestamp
and an HMAC-SHA256 signature; a 2xx marks it delivered; a connection error, a timeout, 408, 429 or a 5xx is
retried after a doubling wait (`retry_min_s` … `retry_max_s`); any other answer, or `max_attempts` failures,
puts it in the dead letters, where an admin sees why and retries it. Several desk processes share the outbox:
each claims a delivery (a conditional update) before it sends it, so only one of them does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from agent_desktop_api.settings import DispatchSettings
from config.database import as_utc, create_tables, metadata
from events.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
BATCH = 20
LEASE_S = 60.0  # a claimed delivery is not picked again for this long (the sender crashed mid-request)
RETRY_STATUSES = frozenset({408, 425, 429})

ticket_deliveries = sa.Table(
    "ticket_deliveries",
    metadata,
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("payload", sa.Text, nullable=False),  # the JSON body, fixed at submit
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
)


def enqueue(conn: Connection, call_id: str, ticket: dict[str, Any], now: datetime) -> None:
    """The ticket's delivery, in the submit's own transaction."""
    key = hashlib.sha256(f"hotline-ticket:{call_id}".encode()).hexdigest()[:32]
    payload = json.dumps({"idempotency_key": key, **ticket}, ensure_ascii=False, default=str)
    values = {
        "call_id": call_id,
        "idempotency_key": key,
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    conn.execute(sa.insert(ticket_deliveries).values(**values))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What X-Hotline-Signature carries: a receiver computes the same over what it got and compares."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class DeliveryStore:
    """The outbox's rows (blocking calls: run them from a thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, ticket_deliveries)

    def claim_due(self, now: datetime, limit: int = BATCH) -> list[dict[str, Any]]:
        """Due pending deliveries, each claimed for LEASE_S (another desk process claiming it too loses)."""
        return [row for row in self.due(now, limit) if self.claim(row, now)]

    def due(self, now: datetime, limit: int = BATCH) -> list[dict[str, Any]]:
        d = ticket_deliveries.c
        query = sa.select(ticket_deliveries).where(d.status == PENDING, d.next_attempt_at <= now)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query.order_by(d.next_attempt_at).limit(limit)).mappings()]

    def claim(self, row: dict[str, Any], now: datetime) -> bool:
        """Move the delivery's next attempt LEASE_S ahead, if nobody did since `row` was read: one claimer wins."""
        d = ticket_deliveries.c
        with self.engine.begin() as conn:
            won = conn.execute(
                sa.update(ticket_deliveries)
                .where(d.call_id == row["call_id"], d.status == PENDING, d.next_attempt_at == row["next_attempt_at"])
                .values(next_attempt_at=now + timedelta(seconds=LEASE_S))
            ).rowcount
        return bool(won)

    def delivered(self, call_id: str, now: datetime) -> None:
        self._set(call_id, status=DELIVERED, delivered_at=now, last_error=None)

    def failed(self, call_id: str, attempts: int, error: str, retry_at: datetime | None) -> None:
        if retry_at is None:
            self._set(call_id, status=DEAD, attempts=attempts, last_error=error[:300])
        else:
            self._set(call_id, attempts=attempts, last_error=error[:300], next_attempt_at=retry_at)

    def retry(self, call_id: str, now: datetime) -> bool:
        """A dead letter back in the queue (an admin's decision); False if there is none of that call."""
        d = ticket_deliveries.c
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(ticket_deliveries)
                .where(d.call_id == call_id, d.status == DEAD)
                .values(status=PENDING, attempts=0, next_attempt_at=now)
            ).rowcount
        return bool(done)

    def list(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        d = ticket_deliveries.c
        query = sa.select(*_SHOWN)
        if status is not None:
            query = query.where(d.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(d.created_at.desc()).limit(limit)).mappings().all()
        return [_shown(row) for row in rows]

    def get(self, call_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*_SHOWN).where(ticket_deliveries.c.call_id == call_id)).mappings().first()
        return _shown(row) if row is not None else None

    def _set(self, call_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(ticket_deliveries).where(ticket_deliveries.c.call_id == call_id).values(**values))


class DispatchSender:
    """Posts due deliveries to the webhook, on the running loop (the database in threads)."""

    def __init__(
        self,
        store: DeliveryStore,
        settings: DispatchSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if settings.webhook_url is None:
            raise ValueError("dispatch.webhook_url is not set")
        self.store = store
        self.settings = settings
        self.url = settings.webhook_url
        self.clock = clock
        self.sent = 0
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=settings.timeout_s, transport=transport, trust_env=False)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dispatch-sender")

    def wake(self) -> None:
        """A ticket was just submitted: send now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)  # its wait_for may swallow one cancel (events.tasks)
            self._task = None
        await self._http.aclose()

    async def _run(self) -> None:
        while True:
            try:
                await self.send_due()
            except sa.exc.SQLAlchemyError as exc:  # the outbox keeps them: sent once the database answers
                log.warning("dispatch.database_unavailable", error=str(exc)[:200])
            except Exception:  # never let the sender die: the next round tries again
                log.exception("dispatch.round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
            self._wake.clear()

    async def send_due(self) -> int:
        """Send what is due now; returns how many were delivered."""
        due = await asyncio.to_thread(self.store.claim_due, self.clock())
        results = await asyncio.gather(*(self._deliver(row) for row in due))
        return sum(results)

    async def _deliver(self, row: dict[str, Any]) -> bool:
        body = row["payload"].encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": row["idempotency_key"],
            "X-Hotline-Timestamp": timestamp,
        }
        if self.settings.secret is not None:
            headers["X-Hotline-Signature"] = signature(self.settings.secret.get_secret_value(), timestamp, body)
        attempts = int(row["attempts"]) + 1
        try:
            async with self._slots:
                answer = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return await self._failed(row["call_id"], attempts, f"{type(exc).__name__}: {exc}"[:300], retry=True)
        if answer.is_success:
            await asyncio.to_thread(self.store.delivered, row["call_id"], self.clock())
            self.sent += 1
            log.info("dispatch.delivered", call_id=row["call_id"], attempts=attempts, status=answer.status_code)
            return True
        retry = answer.status_code >= 500 or answer.status_code in RETRY_STATUSES
        return await self._failed(row["call_id"], attempts, f"HTTP {answer.status_code}: {answer.text[:200]}", retry)

    async def _failed(self, call_id: str, attempts: int, error: str, retry: bool) -> bool:
        s = self.settings
        retry_at = None
        if retry and attempts < s.max_attempts:
            wait = min(s.retry_max_s, s.retry_min_s * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
            retry_at = self.clock() + timedelta(seconds=wait)
        await asyncio.to_thread(self.store.failed, call_id, attempts, error, retry_at)
        (log.warning if retry_at else log.error)(
            "dispatch.failed" if retry_at else "dispatch.dead_letter", call_id=call_id, attempts=attempts, error=error
        )
        return False


_SHOWN = [c for c in ticket_deliveries.c if c.name != "payload"]  # what admins see of a delivery


def _shown(row: sa.RowMapping) -> dict[str, Any]:
    return {key: as_utc(value) if isinstance(value, datetime) else value for key, value in row.items()}
