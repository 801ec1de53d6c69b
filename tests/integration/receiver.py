"""A webhook receiver for tests that records every request.

Paths: /ok answers 200; /fail 503; /gone 410; /reject 400; /flaky/N 503 to the first N
requests of each webhook-id, then 200; /slow sleeps 3 s and /hang 20 s before answering 200.
/wait50 sleeps 50 ms. `plan` gives one webhook-id its own answers, whatever the path;
`take_down` makes every path under a prefix answer an error status until `bring_up`. Each
request keeps when it arrived and when its answer went out (wall clock, for lag checks).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the receiver answered
    at: float = 0.0  # when it arrived (time.monotonic)
    arrived: float = 0.0  # the same, as time.time()
    answered: float = 0.0  # when the answer was written (time.time())

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class Receiver:
    """Runs in a thread on 127.0.0.1; `wait_for` blocks until enough requests arrive."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plans: dict[str, list[int]] = {}  # webhook-id -> its next answers
        self.down: dict[str, int] = {}  # path prefix -> the error status it answers for now
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                arrived, at = time.time(), time.monotonic()
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                status = receiver.status_for(self.path, self.headers.get("webhook-id", ""))
                headers = {k.lower(): v for k, v in self.headers.items()}
                received = Received(self.path, headers, body, status, at, arrived)
                with receiver._cond:
                    receiver.requests.append(received)
                    receiver._cond.notify_all()
                if self.path.startswith("/slow"):
                    time.sleep(3)
                if self.path.startswith("/hang"):
                    time.sleep(20)
                if self.path.startswith("/wait50"):
                    time.sleep(0.05)
                reply = b'{"ok":true}' if status == 200 else b'{"error":"down"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
                self.wfile.flush()
                received.answered = time.time()

            def log_message(self, format: str, *args: object) -> None:
                return None

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # the workers open many connections at once

            def handle_error(self, request: object, client_address: object) -> None:
                # A worker that gave up (its timeout, or its stack stopped) closed the
                # connection while a slow answer was on its way: expected, not an error.
                if isinstance(sys.exc_info()[1], ConnectionError):
                    return
                super().handle_error(request, client_address)  # type: ignore[arg-type]

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def plan(self, webhook_id: str, statuses: list[int]) -> None:
        """Answer this webhook-id's next requests with `statuses`, then 200."""
        with self._cond:
            self.plans[webhook_id] = list(statuses)

    def take_down(self, prefix: str, status: int = 503) -> None:
        """Answer `status` to every request under `prefix` until `bring_up`.

        A 4xx leaves the worker's breaker (per host, so shared by every path here) closed.
        """
        with self._cond:
            self.down[prefix] = status

    def bring_up(self, prefix: str) -> None:
        with self._cond:
            self.down.pop(prefix, None)

    def status_for(self, path: str, webhook_id: str) -> int:
        with self._cond:
            planned = self.plans.get(webhook_id)
            if planned:
                return planned.pop(0)
            for prefix, status in self.down.items():
                if path.startswith(prefix):
                    return status
        if path.startswith("/fail"):
            return 503
        if path.startswith("/gone"):
            return 410
        if path.startswith("/reject"):
            return 400
        if path.startswith("/flaky/"):
            failures = int(path.rsplit("/", 1)[1])
            with self._cond:
                seen = sum(1 for r in self.requests if r.headers.get("webhook-id") == webhook_id)
            return 503 if seen < failures else 200
        return 200

    def on(self, path: str) -> list[Received]:
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def webhook_ids(self, path: str) -> set[str]:
        """The distinct `webhook-id`s received on `path`."""
        return {r.headers["webhook-id"] for r in self.on(path)}

    def wait_for(self, path: str, count: int, timeout_s: float = 30.0) -> list[Received]:
        """Requests to `path`, once at least `count` arrived; fails the test on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                got = [r for r in self.requests if r.path == path]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    break
                self._cond.wait(left)
        assert len(got) >= count, f"{path}: {len(got)} requests after {timeout_s}s, wanted {count}"
        return got

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
