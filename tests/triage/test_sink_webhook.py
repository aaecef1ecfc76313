"""Webhook sink against a real HTTP receiver on loopback: retries, backoff, timeout, bounded queue."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from voicetriage.core.errors import ConfigError
from voicetriage.core.events import Final, Hint
from voicetriage.sinks.webhook import WebhookSink


def hint(seq: int, call_id: str = "call-1") -> Hint:
    return Hint(call_id, "human_now", "route", 90, 0.95, ("human_request",), (), 2.0, 1.5, 2.0, 0.5, "new", seq)


class Receiver:
    """An HTTP server whose answers the test scripts: a list of (status, delay) per request."""

    def __init__(self) -> None:
        self.script: list[tuple[int, float]] = []
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, delay = receiver.script.pop(0) if receiver.script else (200, 0.0)
                receiver.requests.append({"headers": dict(self.headers), "body": json.loads(body),
                                          "status": status, "at": time.monotonic()})
                receiver.release.wait(10)
                if delay:
                    time.sleep(delay)
                payload = b'{"ok":true}'
                try:
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/routing"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_posts_hints_as_json_in_order(receiver):
    sink = WebhookSink(receiver.url, token="s3cret", senders=1)  # one sender: strict order
    for i in range(1, 4):
        sink(hint(i))
    sink(Final("call-1", "caller", 0, 0.0, 1.0, "hello", "en", 0.9, -0.2, 0.0, "silence"))  # not a hint
    assert wait_for(lambda: sink.stats.sent == 3)
    sink.close()
    assert [r["body"]["seq"] for r in receiver.requests] == [1, 2, 3]
    r = receiver.requests[0]
    assert r["body"]["type"] == "hint" and r["body"]["queue"] == "human_now"
    assert r["headers"]["Content-Type"].startswith("application/json")
    assert r["headers"]["Authorization"] == "Bearer s3cret"
    assert r["headers"]["X-Voicetriage-Event"] == "hint"
    assert r["headers"]["Idempotency-Key"] == "call-1/hint/1"


def test_retries_with_backoff_then_delivers(receiver):
    receiver.script = [(503, 0.0), (500, 0.0), (429, 0.0)]
    sink = WebhookSink(receiver.url, retries=4, backoff_s=0.1)
    sink(hint(1))
    assert wait_for(lambda: sink.stats.sent == 1)
    sink.close()
    assert [r["status"] for r in receiver.requests] == [503, 500, 429, 200]
    assert {r["headers"]["Idempotency-Key"] for r in receiver.requests} == {"call-1/hint/1"}
    assert [r["headers"].get("X-Voicetriage-Attempt") for r in receiver.requests] == [None, "2", "3", "4"]
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:])]
    assert gaps[1] > gaps[0] * 1.3  # exponential: 0.1 s, then 0.2 s (the 429 said Retry-After: 0)
    assert (sink.stats.retries, sink.stats.failed) == (3, 0)


def test_gives_up_after_the_last_retry_and_goes_on(receiver):
    receiver.script = [(502, 0.0)] * 3
    sink = WebhookSink(receiver.url, retries=2, backoff_s=0.01, senders=1)
    sink(hint(1))
    sink(hint(2))
    assert wait_for(lambda: sink.stats.sent == 1)
    sink.close()
    assert sink.stats.failed == 1
    assert [r["body"]["seq"] for r in receiver.requests] == [1, 1, 1, 2]


def test_client_errors_are_not_retried(receiver):
    receiver.script = [(400, 0.0)]
    sink = WebhookSink(receiver.url, retries=3, backoff_s=0.01)
    sink(hint(1))
    sink(hint(2))
    assert wait_for(lambda: sink.stats.sent == 1)
    sink.close()
    assert sink.stats.failed == 1 and sink.stats.retries == 0
    assert len(receiver.requests) == 2


def test_a_hanging_webhook_times_out_and_is_retried(receiver):
    receiver.script = [(200, 2.0)]  # answers after 2 s; the sink waits 0.3 s
    sink = WebhookSink(receiver.url, timeout_s=0.3, retries=2, backoff_s=0.01)
    sink(hint(1))
    assert wait_for(lambda: sink.stats.sent == 1)
    sink.close()
    assert len(receiver.requests) == 2 and sink.stats.retries == 1


def test_connection_refused_is_retried_then_given_up():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    sink = WebhookSink(f"http://127.0.0.1:{port}/x", retries=2, backoff_s=0.01)
    sink(hint(1))
    assert wait_for(lambda: sink.stats.failed == 1)
    sink.close()
    assert sink.stats.retries == 2 and sink.stats.sent == 0


def test_slow_webhook_never_blocks_the_caller_and_the_queue_is_bounded(receiver):
    receiver.release.clear()  # the receiver holds every request until released
    sink = WebhookSink(receiver.url, queue_size=5, timeout_s=10, senders=1)
    sink(hint(1))
    assert wait_for(lambda: len(receiver.requests) == 1)  # in flight, stuck
    for i in range(2, 102):  # would hang here if enqueueing waited on the receiver
        sink(hint(i))
    assert sink.pending == 5 and sink.stats.dropped == 95
    receiver.release.set()
    assert wait_for(lambda: sink.stats.sent == 6)
    sink.close()
    # the newest five survived, in order
    assert [r["body"]["seq"] for r in receiver.requests] == [1, 97, 98, 99, 100, 101]


def test_close_delivers_what_is_queued(receiver):
    sink = WebhookSink(receiver.url)
    for i in range(1, 6):
        sink(hint(i))
    sink.close(timeout=5)
    assert sink.stats.sent == 5
    sink(hint(6))  # after close: logged, not sent
    assert sink.stats.queued == 5


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "http://"])
def test_bad_urls_are_config_errors(url):
    with pytest.raises(ConfigError, match="webhook URL"):
        WebhookSink(url)


def test_one_slow_delivery_does_not_hold_back_the_next_hint(receiver):
    receiver.script = [(200, 3.0)]  # the first request hangs for 3 s
    sink = WebhookSink(receiver.url, timeout_s=10)  # the default: several senders
    t0 = time.monotonic()
    sink(hint(1, call_id="slow-call"))
    assert wait_for(lambda: len(receiver.requests) == 1)
    sink(hint(1, call_id="other-call"))
    assert wait_for(lambda: sink.stats.sent >= 1, timeout=2.5)
    assert receiver.requests[-1]["body"]["call_id"] == "other-call" and time.monotonic() - t0 < 2.5
    assert wait_for(lambda: sink.stats.sent == 2)
    sink.close()
    assert sink.health()["unsent"] == 0 and sink.health()["sent"] == 2


def test_drops_and_what_shutdown_could_not_send_are_reported(receiver, caplog):
    """Issue 11: webhook drops were only log lines. /health's webhook section (this
    health()) counts them, and a shutdown that cannot deliver says how much was left."""
    receiver.release.clear()  # every request hangs until released
    sink = WebhookSink(receiver.url, queue_size=2, timeout_s=1, retries=0, senders=1)
    sink(hint(1))
    assert wait_for(lambda: len(receiver.requests) == 1)
    for i in range(2, 6):
        sink(hint(i))
    with caplog.at_level("WARNING", logger="voicetriage.sinks.webhook"):
        sink.close(timeout=0.2)
    h = sink.health()
    assert h["dropped"] == 2 and h["unsent"] == 2, h  # the one in flight: sent or failed
    assert "2 event(s) not delivered at shutdown" in caplog.text
    receiver.release.set()
