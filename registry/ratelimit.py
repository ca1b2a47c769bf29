"""Bounded cost per caller: request-rate limits per client address and per bearer token, and the
request-body cap, both as pure ASGI middleware so a refused request costs no routing, no parsing and
no database work.

Rate limits are token buckets kept in this worker's memory (with N workers a caller gets up to N
times the configured rate; the per-namespace publish quota, which must be exact, is counted in the
database by ``registry.publishing``). Tokens are keyed by a hash of the header, never the secret.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Paths never rate limited: liveness probes must see the server, not the limiter.
EXEMPT_PATHS = frozenset({"/healthz"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TokenBuckets:
    """Token buckets by key: ``rate`` per second refill, ``burst`` capacity; bounded memory (LRU)."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, max(1, burst), max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token for ``key``; return 0 if allowed, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                self._buckets.move_to_end(key)
                while len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


async def send_error(send: Send, status: int, message: str, kind: str, headers: dict[str, str]) -> None:
    """A JSON error in the registry's one error shape, sent straight from middleware."""
    body = json.dumps({"error": message, "type": kind}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return str(v.decode("latin-1"))
    return None


class RateLimitMiddleware:
    """429 with ``Retry-After`` when a client address or a bearer token exceeds its rate."""

    def __init__(self, app: ASGIApp, registry: Any) -> None:
        self.app = app
        s = registry.settings
        self.metrics = registry.metrics
        self.clients = TokenBuckets(s.rate_limit_per_client, s.rate_limit_per_client_burst)
        self.tokens = TokenBuckets(s.rate_limit_per_token, s.rate_limit_per_token_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.clients.take(client[0] if client else "unknown")
        which = "client"
        authorization = _header(scope, b"authorization")
        if not wait and authorization:
            wait = self.tokens.take(hashlib.sha256(authorization.encode()).hexdigest())
            which = "token"
        if wait:
            self.metrics.rate_limited.labels(which).inc()
            retry = max(1, math.ceil(wait))
            await send_error(
                send,
                429,
                f"rate limit for this {which} exceeded; retry in {retry} s",
                "RateLimited",
                {"Retry-After": str(retry)},
            )
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a body over ``max_body_bytes``, decided before the application reads any of it.

    A declared ``Content-Length`` over the cap is refused at once; a chunked body is read up to the
    cap and refused at the first byte past it. What passes is replayed to the application, which can
    then never hold more than the cap in memory, whatever the endpoint does with its body.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            if not declared.isdigit():
                await send_error(send, 400, "invalid Content-Length", "UsageError", {})
            else:
                await send_error(
                    send, 413, f"body is {declared} bytes, the limit is {self.limit}", "PayloadTooLarge", {}
                )
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.limit:
                await send_error(
                    send, 413, f"body exceeds the limit of {self.limit} bytes", "PayloadTooLarge", {}
                )
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
