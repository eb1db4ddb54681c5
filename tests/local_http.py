"""A Range-capable HTTP server on 127.0.0.1 for download tests (loopback only, bounded: it
serves the bytes a test puts in ``state.files`` and nothing else, and stops with the test)."""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class ServerState:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.content_type: dict[str, str] = {}
        self.truncate_once: dict[str, int] = {}  # path -> bytes to send before hanging up
        self.ignore_range: set[str] = set()
        self.chunked_cut: dict[str, int] = {}  # path -> bytes sent as one chunk before hanging up
        self.requests: list[tuple[str, str | None]] = []
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path


def _handler(state: ServerState):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: hanging up ends the body

        def log_message(self, *args):
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if rng and self.path not in state.ignore_range:
                start = int(re.match(r"bytes=(\d+)-$", rng).group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            if self.path in state.chunked_cut:  # no length known: only the chunk framing tells
                n = state.chunked_cut.pop(self.path)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, n, 8192):  # whole 8 KB chunks, the last one cut at n
                    piece = payload[i:i + 8192]
                    self.wfile.write(b"%x\r\n" % len(piece) + piece[:n - i] + b"\r\n"[:n - i])
                self.wfile.flush()
                return
            ctype = state.content_type.get(self.path, "application/octet-stream")
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            cut = state.truncate_once.pop(self.path, None)
            self.wfile.write(payload if cut is None else payload[:cut])
            self.wfile.flush()

    return Handler


@pytest.fixture
def server():
    """ServerState of a server on 127.0.0.1 (an ephemeral port) for the test's duration."""
    state = ServerState()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
