"""A webhook receiver that answers with broken HTTP, written with raw sockets.

Each path is one misbehaviour; the bytes are sent exactly as given (no HTTP library would
produce them). Runs on a thread; counts the connections it accepted.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
ANSWERS: dict[str, bytes] = {
    "/long-header": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 9000 + b"\r\nContent-Length: 0\r\n\r\n",
    "/many-headers": b"HTTP/1.1 200 OK\r\n"
    + b"".join(b"X-H%d: v\r\n" % i for i in range(300))
    + b"Content-Length: 0\r\n\r\n",
    "/nul-header": b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "/banner": b"SSH-2.0-OpenSSH_9.6 Debian\r\n",
    "/garbage": bytes(range(256)) * 4,
    "/short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
    "/retry-after-naive": b"HTTP/1.1 503 Busy\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 -0000"
    b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "/retry-after-superscript": "HTTP/1.1 503 Busy\r\nRetry-After: \u00b2\r\n".encode()
    + b"Content-Length: 0\r\nConnection: close\r\n\r\n",
}
# What each answer must be recorded as.
EXPECTED_REASONS = {
    "/long-header": "invalid_response",
    "/many-headers": "invalid_response",
    "/nul-header": "invalid_response",
    "/banner": "invalid_response",
    "/garbage": "invalid_response",
    "/short-body": "invalid_response",
    "/retry-after-naive": "http_5xx",
    "/retry-after-superscript": "http_5xx",
    "/reset": "connection",
    "/endless-chunked": "response_too_large",
}


class HostileReceiver:
    """Raw-socket HTTP endpoint on loopback; `url` + one of EXPECTED_REASONS' paths."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                path = _read_request_path(conn)
                if path == "/reset":  # RST before any answer
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if path == "/hang":  # read the request, never answer
                    self._stop.wait(60)
                    return
                if path == "/endless-chunked":
                    _endless_chunks(conn, self._stop)
                    return
                conn.sendall(ANSWERS.get(path, OK))
            except OSError:
                pass  # the worker gave up on us: that is the point


def _read_request_path(conn: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head.split(b" ")[1].decode() if b" " in head else ""


def _endless_chunks(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    deadline = time.monotonic() + 30
    while not stop.is_set() and time.monotonic() < deadline:
        conn.sendall(chunk)
