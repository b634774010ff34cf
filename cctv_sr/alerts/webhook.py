"""Watchlist alerts POSTed to an HTTP(S) webhook, off the pipeline's threads.

Threading contract: :meth:`WebhookSender.send` may be called from any thread and never blocks
on the network: it serialises the alert (later changes to the mapping do not matter) onto a
bounded in-memory queue; when that is full the *oldest* undelivered alert is dropped, counted
in ``dropped`` and reported by a rate-limited warning. One daemon thread, started by
:meth:`~WebhookSender.start`, POSTs the alerts one at a time in the order they were sent,
retrying connection errors, timeouts, 429 and 5xx with capped exponential backoff and jitter
(``Retry-After`` is honoured up to ``backoff_max_s``); other answers >= 300 are ``rejected``.
:meth:`~WebhookSender.close` lets the thread flush the queue until a deadline, then gives up;
what was still queued or in flight stays in ``pending``. Network and HTTP failures never raise
out of ``send`` or ``close``: they are logged, with URL credentials masked, and counted.

Each POST's body is exactly the alert (``json.dumps(alert, ensure_ascii=False)``, UTF-8); its
``X-Cctv-Sr-Event: <event_id>`` header lets a receiver drop duplicates a retry may cause."""

from __future__ import annotations

import base64
import collections
import email.utils
import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from cctv_sr.errors import ConfigError

logger = logging.getLogger(__name__)

#: Header that names the alert's ``event_id`` so receivers can de-duplicate retried POSTs.
EVENT_HEADER = "X-Cctv-Sr-Event"


def safe_url(url: str) -> str:
    """``url`` for logs: any ``user:password@`` (or token ``user@``) part becomes ``***@``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


@dataclass(frozen=True)
class WebhookConfig:
    """Where and how alerts are POSTed; invalid values raise :class:`ConfigError`."""

    url: str
    timeout_s: float = 5.0  # per POST attempt (connect + answer)
    attempts: int = 5  # tries per alert, the first included, before it counts as failed
    backoff_base_s: float = 0.5  # delay before the first retry; doubles per retry
    backoff_max_s: float = 30.0  # cap of every delay, Retry-After included
    queue_size: int = 1000  # undelivered alerts held before the oldest is dropped
    headers: tuple[tuple[str, str], ...] = ()  # extra headers, e.g. (("Authorization", "...")
    close_timeout_s: float = 10.0  # default deadline of close()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad setting."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"alert webhook {safe_url(self.url)!r}: must be an http(s) URL")
        for name in ("timeout_s", "backoff_base_s", "backoff_max_s", "close_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"alert webhook {name} = {value!r}: must be a number >= 0")
        if self.timeout_s <= 0:
            raise ConfigError(f"alert webhook timeout_s = {self.timeout_s!r}: must be > 0")
        if self.backoff_max_s < self.backoff_base_s:
            raise ConfigError("alert webhook backoff_max_s must be >= backoff_base_s")
        for name in ("attempts", "queue_size"):
            if type(value := getattr(self, name)) is not int or value < 1:
                raise ConfigError(f"alert webhook {name} = {value!r}: must be an integer >= 1")
        for header in self.headers:
            if (len(header) != 2 or not header[0] or not all(
                    isinstance(h, str) and h.isascii() and h.isprintable() for h in header)):
                raise ConfigError(f"alert webhook header {header!r}: must be (name, value)")


@dataclass(frozen=True)
class WebhookCounts:
    """Snapshot of a sender's counts: ``sent`` (2xx), ``retried`` (extra attempts), ``failed``
    (all attempts failed), ``rejected`` (3xx/4xx but 429, or not JSON), ``dropped`` (pushed out
    of a full queue, or sent after close), ``pending`` (queued or in flight; after close, these
    were never delivered)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    rejected: int = 0
    dropped: int = 0
    pending: int = 0

    @property
    def undelivered(self) -> int:
        """Alerts that did not (or not yet) reach the receiver."""
        return self.failed + self.rejected + self.dropped + self.pending


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Answers 3xx as errors: a redirected POST would silently turn into a GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _RateLimited:
    """A logger call made at most once per ``every_s``; the calls in between are counted."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._last = -float("inf")
        self._suppressed = 0

    def log(self, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            self._suppressed += 1
            return
        extra = f" ({self._suppressed} similar messages suppressed)" if self._suppressed else ""
        self._last, self._suppressed = now, 0
        logger.log(level, message + extra, *args)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class WebhookSender:
    """POSTs alerts to one webhook from a background thread (see the module docstring)."""

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self.safe_url = safe_url(config.url)
        parts = urlsplit(config.url)
        # urllib does not send URL credentials itself: strip them, send them as Basic auth.
        netloc = parts.netloc.rpartition("@")[2]
        self._post_url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        self._headers = {"Content-Type": "application/json; charset=utf-8"}
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(user_pass.encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._headers.update(dict(config.headers))
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._queue: collections.deque[tuple[bytes, str | None]] = collections.deque()
        self._cond = threading.Condition()  # guards every attribute below but _abandon
        self._abandon = threading.Event()  # set when close() gives up: stop retrying now
        self._closing, self._in_flight = False, 0
        self._counts = {name: 0 for name in ("sent", "retried", "failed", "rejected", "dropped")}
        self._thread: threading.Thread | None = None
        self._drop_log, self._fail_log = _RateLimited(), _RateLimited()

    @property
    def counts(self) -> WebhookCounts:
        """A snapshot of the counts, safe to read from any thread."""
        with self._cond:
            return WebhookCounts(**self._counts, pending=len(self._queue) + self._in_flight)

    def start(self) -> None:
        """Start the delivery thread (once; alerts sent before are delivered then)."""
        with self._cond:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
            self._thread.start()

    def send(self, body: Mapping[str, Any]) -> None:
        """Queue one alert for delivery; returns at once and never raises for I/O reasons."""
        try:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            logger.error("alert webhook %s: alert is not JSON (%s); not sent", self.safe_url, exc)
            with self._cond:
                self._counts["rejected"] += 1
            return
        raw_id = body.get("event_id")
        event_id = None if raw_id is None else str(raw_id)  # a header: printable ASCII only
        with self._cond:
            if self._closing:
                self._counts["dropped"] += 1
                self._drop_log.log(logging.WARNING, "alert webhook %s: alert sent after close; "
                                   "dropped", self.safe_url)
                return
            if len(self._queue) >= self.config.queue_size:
                self._queue.popleft()
                self._counts["dropped"] += 1
                self._drop_log.log(logging.WARNING, "alert webhook %s: queue of %d full; oldest "
                                   "alert dropped", self.safe_url, self.config.queue_size)
            ok = event_id is not None and event_id.isascii() and event_id.isprintable()
            self._queue.append((data, event_id if ok else None))
            self._cond.notify_all()

    def close(self, timeout_s: float | None = None) -> WebhookCounts:
        """Deliver what is queued until ``timeout_s`` (default ``close_timeout_s``), then give
        up; later sends are dropped. Returns the counts; ``pending`` are the undelivered."""
        deadline = time.monotonic() + (self.config.close_timeout_s if timeout_s is None
                                       else max(0.0, timeout_s))
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while (self._queue or self._in_flight) and self._thread is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._abandon.set()
            self._cond.notify_all()
        counts = self.counts
        if counts.pending:
            logger.warning("alert webhook %s: closing with %d alert(s) undelivered",
                           self.safe_url, counts.pending)
        return counts

    def _run(self) -> None:
        """The delivery thread: one alert at a time until closed and empty, or abandoned."""
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._abandon.is_set():
                    return
                data, event_id = self._queue.popleft()
                self._in_flight = 1
            try:
                outcome = self._deliver(data, event_id)
            except Exception:  # a bug must not kill the thread silently
                logger.exception("alert webhook %s: unexpected error", self.safe_url)
                outcome = "failed"
            with self._cond:
                self._in_flight = 0
                if outcome is not None:
                    self._counts[outcome] += 1
                else:  # abandoned by close(): still undelivered, keep it visible as pending
                    self._queue.appendleft((data, event_id))
                self._cond.notify_all()

    def _deliver(self, data: bytes, event_id: str | None) -> str | None:
        """Try one alert up to ``attempts`` times; the count it belongs to, None if abandoned."""
        for attempt in range(self.config.attempts):
            if attempt:
                with self._cond:
                    self._counts["retried"] += 1
            outcome, reason, server_delay = self._post(data, event_id)
            if outcome != "retry":
                return outcome
            if attempt + 1 == self.config.attempts or self._abandon.is_set():
                break
            delay = min(self.config.backoff_max_s,  # exponent capped: 2.0 ** 1024 overflows
                        self.config.backoff_base_s * 2.0 ** min(attempt, 30))
            delay *= random.uniform(0.5, 1.0)
            if server_delay is not None:
                delay = min(self.config.backoff_max_s, server_delay)
            self._fail_log.log(logging.WARNING, "alert webhook %s: attempt %d failed (%s); "
                               "retrying in %.2f s", self.safe_url, attempt + 1, reason, delay)
            if self._abandon.wait(delay):
                return None
        if self._abandon.is_set():
            return None
        logger.error("alert webhook %s: alert %s undelivered after %d attempts (%s)",
                     self.safe_url, event_id, self.config.attempts, reason)
        return "failed"

    def _post(self, data: bytes, event_id: str | None) -> tuple[str, str, float | None]:
        """One POST: ``("sent" | "rejected" | "retry", reason, Retry-After seconds or None)``."""
        headers = dict(self._headers)
        if event_id is not None:
            headers[EVENT_HEADER] = event_id
        request = urllib.request.Request(self._post_url, data, headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as answer:
                answer.read()
            return "sent", "", None
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 429 or exc.code >= 500:
                return "retry", f"HTTP {exc.code}", _retry_after(exc.headers.get("Retry-After"))
            logger.error("alert webhook %s: alert %s rejected with HTTP %d %s; not retried",
                         self.safe_url, event_id, exc.code, exc.reason)
            return "rejected", f"HTTP {exc.code}", None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            return "retry", f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}", None
