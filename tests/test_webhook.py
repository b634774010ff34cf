"""The alert webhook sender against a real HTTP server on 127.0.0.1 (cctv_sr.alerts.webhook)."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cctv_sr.alerts import EVENT_HEADER, WebhookConfig, WebhookCounts, WebhookSender
from cctv_sr.errors import ConfigError


@dataclass
class Reply:
    """One scripted answer: status, seconds to wait before answering, extra headers."""

    status: int = 200
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Receiver:
    """A webhook receiver: records every POST, answers from ``script`` then ``default``."""

    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self, port: int = 0) -> int:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers.items()), body))
                    reply = receiver.script.pop(0) if receiver.script else receiver.default
                time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client timed out and hung up
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return int(self.server.server_address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for _, _, body in self.requests]

    def deduped(self) -> list[dict[str, Any]]:
        """Bodies in arrival order, each event id kept once (what a receiver would do)."""
        seen: set[str] = set()
        out = []
        with self.lock:
            for _, headers, body in self.requests:
                if headers[EVENT_HEADER] not in seen:
                    seen.add(headers[EVENT_HEADER])
                    out.append(json.loads(body))
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    """A port nothing listens on (reserved, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def events(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"event_id": f"ev-{i:04d}", "kind": "watchlist_match", "identity": "Zoë Ñúñez",
             "score": 0.5 + i / 1000, "frame": i} for i in range(start, start + n)]


def make(port: int, **kwargs: Any) -> WebhookSender:
    settings: dict[str, Any] = {"timeout_s": 1.0, "backoff_base_s": 0.02, "backoff_max_s": 0.1}
    settings.update(kwargs)
    sender = WebhookSender(WebhookConfig(url=f"http://127.0.0.1:{port}/hook", **settings))
    sender.start()
    return sender


def encoded(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


def test_delivers_events_in_order_with_exact_bodies_and_headers(receiver: Receiver) -> None:
    port = receiver.start()
    config = WebhookConfig(url=f"http://alice:s3cret@127.0.0.1:{port}/hook?cam=1",
                           headers=(("X-Token", "tok-123"),))
    sender = WebhookSender(config)
    assert "s3cret" not in sender.safe_url and "***@127.0.0.1" in sender.safe_url
    sender.start()
    sent = events(20)
    for event in sent:
        sender.send(event)
    assert sender.close(10.0) == WebhookCounts(sent=20)
    assert receiver.bodies() == [encoded(e) for e in sent]
    path, headers, _ = receiver.requests[0]
    assert path == "/hook?cam=1"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["X-Token"] == "tok-123"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert [h[EVENT_HEADER] for _, h, _ in receiver.requests] == [e["event_id"] for e in sent]


def test_server_errors_are_retried_until_delivered(receiver: Receiver) -> None:
    receiver.script = [Reply(500), Reply(502), Reply(503), Reply(429)]
    sender = make(receiver.start())
    sent = events(5)
    for event in sent:
        sender.send(event)
    assert sender.close(10.0) == WebhookCounts(sent=5, retried=4)
    assert receiver.bodies() == [encoded(sent[0])] * 5 + [encoded(e) for e in sent[1:]]


def test_retry_after_is_honoured_but_capped(receiver: Receiver) -> None:
    receiver.script = [Reply(503, headers=(("Retry-After", "3600"),))]
    sender = make(receiver.start(), backoff_max_s=0.3)
    began = time.monotonic()
    sender.send(events(1)[0])
    assert sender.close(10.0) == WebhookCounts(sent=1, retried=1)
    assert 0.3 <= time.monotonic() - began < 2.0


def test_slow_server_times_out_and_send_never_blocks(receiver: Receiver) -> None:
    receiver.script = [Reply(200, delay_s=1.5), Reply(200, delay_s=1.5)]
    sender = make(receiver.start(), timeout_s=0.3)
    sent = events(100)
    began = time.perf_counter()
    for event in sent:
        sender.send(event)
    assert time.perf_counter() - began < 0.05
    assert sender.close(15.0) == WebhookCounts(sent=100, retried=2)
    assert len(receiver.bodies()) == 102  # the slow server did get the two timed-out POSTs
    assert receiver.deduped() == sent


def test_server_down_for_part_of_the_run_loses_no_alert(receiver: Receiver) -> None:
    port = free_port()
    sender = make(port, attempts=10_000, backoff_max_s=0.2)
    sent = events(30)
    for event in sent[:20]:
        sender.send(event)
    time.sleep(2.0)
    assert sender.counts.sent == 0 and sender.counts.pending == 20 and sender.counts.retried > 0
    receiver.start(port)
    for event in sent[20:]:
        sender.send(event)
    counts = sender.close(10.0)
    assert (counts.sent, counts.failed, counts.rejected, counts.dropped, counts.pending) == (
        30, 0, 0, 0, 0)
    assert receiver.deduped() == sent


def test_client_errors_are_rejected_not_retried(receiver: Receiver) -> None:
    receiver.default = Reply(400)
    sender = make(receiver.start())
    for event in events(3):
        sender.send(event)
    assert sender.close(10.0) == WebhookCounts(rejected=3)
    assert len(receiver.bodies()) == 3


def test_gives_up_after_all_attempts(receiver: Receiver) -> None:
    receiver.default = Reply(500)
    sender = make(receiver.start(), attempts=3)
    sender.send(events(1)[0])
    assert sender.close(10.0) == WebhookCounts(failed=1, retried=2)
    assert len(receiver.bodies()) == 3


def test_close_with_unreachable_server_keeps_its_deadline(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    config = WebhookConfig(url=f"http://bob:hunter2@127.0.0.1:{port}/", attempts=10_000,
                           backoff_base_s=0.05, backoff_max_s=0.1)
    sender = WebhookSender(config)
    sender.start()
    with caplog.at_level(logging.WARNING, logger="cctv_sr.alerts.webhook"):
        for event in events(10):
            sender.send(event)
        time.sleep(0.2)
        began = time.monotonic()
        counts = sender.close(0.5)
        assert time.monotonic() - began < 1.0
        sender.send(events(1, start=10)[0])
    assert (counts.sent, counts.pending, counts.failed) == (0, 10, 0)
    assert counts.undelivered == 10
    time.sleep(0.4)  # the thread stopped retrying and the alert it held still counts as pending
    assert sender.counts == WebhookCounts(retried=counts.retried, dropped=1, pending=10)
    assert "***@127.0.0.1" in caplog.text and "hunter2" not in caplog.text


def test_close_gives_up_on_a_request_that_hangs() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        sender = make(silent.getsockname()[1], timeout_s=5.0)
        sender.send(events(1)[0])
        time.sleep(0.1)
        began = time.monotonic()
        counts = sender.close(0.5)
        assert time.monotonic() - began < 1.0
    assert counts.pending == 1 and counts.sent == 0


def test_full_queue_drops_oldest_and_counts_it(caplog: pytest.LogCaptureFixture,
                                               receiver: Receiver) -> None:
    port = receiver.start()
    sender = WebhookSender(WebhookConfig(url=f"http://127.0.0.1:{port}/", queue_size=5))
    sent = events(20)
    with caplog.at_level(logging.WARNING, logger="cctv_sr.alerts.webhook"):
        for event in sent:  # not started yet: nothing leaves the queue
            sender.send(event)
    assert sender.counts == WebhookCounts(dropped=15, pending=5)
    assert sum("queue of 5 full" in r.getMessage() for r in caplog.records) == 1
    sender.start()
    assert sender.close(10.0) == WebhookCounts(sent=5, dropped=15)
    assert receiver.bodies() == [encoded(e) for e in sent[15:]]


def test_unserialisable_alert_is_rejected_without_raising(receiver: Receiver) -> None:
    sender = make(receiver.start())
    sender.send({"event_id": "x", "value": object()})
    sender.send(events(1)[0])
    sender.send({"event_id": "bad\r\nid é", "n": 1})  # sent without the header
    sender.send({"event_id": 7, "n": 2})
    assert sender.close(10.0) == WebhookCounts(sent=3, rejected=1)
    headers = [h for _, h, _ in receiver.requests]
    assert [h.get(EVENT_HEADER) for h in headers] == ["ev-0000", None, "7"]


@pytest.mark.parametrize("bad", [
    {"url": "ftp://example.com/hook"}, {"url": "not a url"}, {"url": "http:///nohost"},
    {"timeout_s": 0}, {"timeout_s": -1.0}, {"attempts": 0}, {"attempts": 2.5},
    {"queue_size": 0}, {"backoff_base_s": -0.1}, {"backoff_base_s": 2.0, "backoff_max_s": 1.0},
    {"close_timeout_s": float("nan")}, {"headers": (("", "x"),)},
    {"headers": (("X-A", "a\r\nX-B: b"),)}, {"headers": (("X-A", "é"),)},
])
def test_bad_config_raises_config_error(bad: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"url": "https://alerts.example.com/hook"}
    settings.update(bad)
    with pytest.raises(ConfigError):
        WebhookConfig(**settings)
