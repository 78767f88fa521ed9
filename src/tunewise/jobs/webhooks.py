"""Webhooks: `fine_tuning.job.succeeded|failed|cancelled` POSTed to the configured URL, signed, retried.

Deliveries follow OpenAI's webhook format (the Standard Webhooks scheme): the body is an event
`{"id", "object": "event", "created_at", "type", "data": {"id": <job id>, ...}}` and the headers
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, so `openai.OpenAI().webhooks.unwrap(body, headers, secret=...)` verifies
them. A secret starting with `whsec_` is base64 after the prefix, as in OpenAI's. Each delivery is a
row in the store: retried with exponential backoff until a 2xx, or given up after `max_attempts`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs import ids
from tunewise.jobs.store.db import Database
from tunewise.jobs.store.models import Job, WebhookDelivery

log = logging.getLogger("tunewise.webhooks")


def signing_key(secret: str) -> bytes:
    return base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()


def sign(secret: str, delivery_id: str, timestamp: int, body: str) -> str:
    digest = hmac.new(signing_key(secret), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str | None, delivery_id: str, body: str, now: float | None = None) -> dict[str, str]:
    timestamp = int(now or time.time())
    headers = {"content-type": "application/json", "webhook-id": delivery_id, "webhook-timestamp": str(timestamp),
               "user-agent": "tunewise-webhooks"}
    if secret:
        headers["webhook-signature"] = sign(secret, delivery_id, timestamp, body)
    return headers


def event_payload(event: str, job: Job, delivery_id: str) -> dict[str, Any]:
    return {"id": delivery_id, "object": "event", "created_at": int(time.time()), "type": event,
            "data": {"id": job.id, "status": job.status, "team": job.team, "fine_tuned_model": job.fine_tuned_model,
                     "error": job.error}}


class WebhookSender:
    """Queues deliveries in the store (`enqueue`, inside the job's transaction) and sends the due ones."""

    def __init__(self, db: Database, config: Any):
        self.db = db
        self.config = config
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tunewise-webhook")

    @property
    def secret(self) -> str | None:
        return os.environ.get(self.config.secret_env) or None

    def enqueue(self, session: Session, event: str, job: Job) -> None:
        if not self.config.url or event not in self.config.events:
            return
        delivery_id = ids.new_id(ids.DELIVERY)
        now = time.time()
        session.add(WebhookDelivery(id=delivery_id, event=event, job_id=job.id,
                                    payload=event_payload(event, job, delivery_id), attempts=0,
                                    next_attempt_at=now, created_at=now))

    def deliver_due(self) -> None:
        if not self.config.url:
            return
        now = time.time()
        with self.db.session() as session:
            due = list(session.scalars(select(WebhookDelivery.id).where(
                WebhookDelivery.delivered_at.is_(None), WebhookDelivery.gave_up.is_(False),
                WebhookDelivery.next_attempt_at <= now).order_by(WebhookDelivery.seq).limit(50)))
        for delivery_id in due:
            with self._lock:
                if delivery_id in self._in_flight:
                    continue
                self._in_flight.add(delivery_id)
            self._pool.submit(self._attempt, delivery_id)

    def _attempt(self, delivery_id: str) -> None:
        import httpx

        try:
            with self.db.session() as session:
                row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
                body = json.dumps(row.payload, separators=(",", ":"))
                error = None
                try:
                    response = httpx.post(self.config.url, content=body, timeout=self.config.timeout_seconds,
                                          headers=signed_headers(self.secret, delivery_id, body))
                    if not 200 <= response.status_code < 300:
                        error = f"HTTP {response.status_code}"
                except httpx.HTTPError as err:
                    error = f"{type(err).__name__}: {err}"
                row.attempts += 1
                if error is None:
                    row.delivered_at = time.time()
                elif row.attempts >= self.config.max_attempts:
                    row.gave_up = True
                    row.last_error = error
                    log.warning("webhook %s for %s given up after %d attempts: %s", row.event, row.job_id,
                                row.attempts, error)
                else:
                    row.last_error = error
                    row.next_attempt_at = time.time() + self.config.backoff_seconds * 2 ** (row.attempts - 1)
        finally:
            with self._lock:
                self._in_flight.discard(delivery_id)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
