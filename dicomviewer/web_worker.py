"""gunicorn's threaded worker (gthread), with each request read whole before it takes a thread.

gthread hands a connection to one of its threads as soon as the first bytes arrive, and the thread
then blocks reading the rest: 8 clients that send half a request line and wait hold all 2x4 threads
of ``serve web``, and nothing else is answered (issue 11). Here the worker's own event loop (its
poller, which already watches every idle connection) reads the request head and then the body
without blocking, as nginx does in front of the app in production, and only a complete request
goes to a thread; a thread then never waits for a client to send. Bodies stay in memory up to
1 MiB, then go to a temporary file (FILE_UPLOAD_TEMP_DIR), up to MAX_UPLOAD_BYTES (+1 MiB for the
multipart envelope), chunked ones included (STOW-RS clients send those).

- a head must be complete within WEB_HEADER_TIMEOUT seconds of the connection (or of its first
  byte after a kept-alive response) and fit in 64 KiB (else 431);
- a body may pause at most WEB_BODY_TIMEOUT seconds between two reads;
- a larger Content-Length is answered 413 at once, a malformed chunked body 400; a connection
  that runs out of time is closed.

Everything else is gunicorn's: parsing, the WSGI environ, the access log, keep-alive, signals,
the hooks (metrics) and the config. No library does this for a WSGI app under gunicorn (27.0.1,
the newest, has no header timeout; its gthread only waits 5 s for a connection's first byte, in a
thread); waitress buffers the same way but serves from one process (half the cores here);
uvicorn + a WSGI adapter reads bodies from the thread again and has its own access log. The cost,
measured (see ``BufferingWorker``): none beyond the noise in alternating runs on a loaded
machine, about 15% of req/s in ``make bench`` on a quiet one.
"""

from __future__ import annotations

import json
import selectors
import tempfile
import time
from functools import partial

from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_MAX = 64 * 1024  # nginx allows 4 x 8 KiB by default
IN_MEMORY = 1024 * 1024
RECV = 256 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HEX = frozenset(b"0123456789abcdefABCDEF")


def limits() -> tuple[float, float, int, str | None]:
    """(head timeout, body idle timeout, largest body, folder for large bodies): the Django settings
    when the app is Django (dicomviewer.wsgi), defaults otherwise (bench/floor_server.py)."""
    from django.conf import settings

    if not settings.configured:
        return 20.0, 60.0, 2 * 1024**3 + IN_MEMORY, None
    return (
        float(settings.WEB_HEADER_TIMEOUT),
        float(settings.WEB_BODY_TIMEOUT),
        settings.MAX_UPLOAD_BYTES + IN_MEMORY,
        settings.FILE_UPLOAD_TEMP_DIR,
    )


class BodyUnreader(SocketUnreader):
    """gunicorn's socket reader, which first hands out the body the poller buffered."""

    def __init__(self, sock):
        super().__init__(sock)
        self.spool = None

    def chunk(self, size_hint=None):
        if self.spool is not None:
            # as much as the caller wants, within what gunicorn's socket reads take at once (more
            # would be copied again by each small read after it)
            data = self.spool.read(min(max(size_hint or 0, 64 * 1024), self.max_body_chunk))
            if data:
                return data
            self.spool.close()
            self.spool = None
        return super().chunk(size_hint)

    def take_buffered(self):
        data = super().take_buffered()
        if self.spool is not None:
            data += self.spool.read()  # at most what a client pipelined behind its request
            self.spool.close()
            self.spool = None
        return data


class Chunked:
    """Where a chunked body ends (RFC 9112 7.1), fed as it arrives; gunicorn de-chunks it later."""

    def __init__(self):
        self.line = b""  # a size or trailer line not yet complete
        self.skip = 0  # chunk data (and its CRLF) still to come
        self.trailers = False

    def feed(self, data: bytes) -> int | None:
        """The offset in ``data`` just past the body's end, or None while it goes on. Raises
        ValueError for a malformed size line."""
        at = 0
        while at < len(data):
            if self.skip:
                taken = min(self.skip, len(data) - at)
                self.skip -= taken
                at += taken
                continue
            end = data.find(b"\n", at)
            if end < 0:
                self.line += data[at:]
                if len(self.line) > 8192:
                    raise ValueError("chunk line too long")
                return None
            line, self.line, at = (self.line + data[at:end]).rstrip(b"\r"), b"", end + 1
            if self.trailers:
                if not line:
                    return at
                continue
            digits = line.split(b";", 1)[0].strip()
            if not digits or not HEX.issuperset(digits):  # int(, 16) would also take 0x10, 1_0, +5
                raise ValueError("chunk size is not hexadecimal")
            size = int(digits, 16)
            if size == 0:
                self.trailers = True
            else:
                self.skip = size + 2
        return None


class Incoming:
    """A connection whose request is being read by the poller."""

    __slots__ = ("conn", "head", "body", "remaining", "chunked", "received", "deadline", "registered")

    def __init__(self, conn, deadline: float):
        self.conn = conn
        self.head = bytearray()
        self.body = None  # a SpooledTemporaryFile once the head is complete and a body follows
        self.remaining = 0  # Content-Length bytes still to come
        self.chunked = None
        self.received = 0
        self.deadline = deadline
        self.registered = False  # with the poller, waiting for more


def framing(head: bytes) -> tuple[int | None, bool, bool]:
    """(Content-Length, chunked, expects 100-continue) from a complete head. ValueError if the
    framing is ambiguous or malformed (gunicorn would refuse it too)."""
    length, chunked, expect = None, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise ValueError("bad Content-Length")
            length = int(value)
        elif name == b"transfer-encoding":
            if chunked or value.rsplit(b",", 1)[-1].strip() != b"chunked":
                raise ValueError("unsupported Transfer-Encoding")
            chunked = True
        elif name == b"expect" and value == b"100-continue":
            expect = True
    if chunked and length is not None:
        raise ValueError("both Content-Length and Transfer-Encoding")
    return length, chunked, expect


def without_expect(head: bytes) -> bytes:
    """The head without its Expect line: the poller answered it already."""
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"expect:"))


class BufferingWorker(ThreadWorker):
    """gthread, whose poller reads each request whole (see the module's docstring).

    Measured against plain gthread, same settings (2 workers x 4 threads), on the 1524 signed image
    URLs of bench/run.py's 500-slice series, wrk with 16 connections (bench/run.py's ``load``),
    6 rounds of 8 s alternating between two ``serve web`` commands that differ only in
    ``--worker-class``, on the 2-core machine while other jobs kept its load average near 10:
    gthread median 507 req/s, p99 159 ms, 1227 us of server CPU per request; this worker median
    786 req/s, p99 117 ms, 1123 us (a second run: 576 / 759 req/s, p99 111 / 114 ms, 1029 /
    990 us). Load from elsewhere moves each round by 2x, so only the alternation compares; on a
    quiet machine gthread served 1791 req/s here, p99 42 ms. A first version that registered
    every request with the poller cost 13% more CPU a request; one that arrives whole now skips
    the registration.

    On a quiet machine, ``make bench`` (SQLite, 2026-11-30, one run with each worker class) shows a
    cost: 1592 req/s, p99 31.3 ms with this worker against 1865 req/s, p99 28.4 ms with gthread
    (0.74x and 0.86x the floor's req/s); through nginx 1330 against 1453 req/s (0.84x / 0.96x).
    Kept: nginx (deploy/, ``proxy_request_buffering off`` for uploads) passes slow bodies on, so
    production needs it too; making its hand-off cheaper is left to the serving work of issue 14."""

    def init_process(self):
        self.incoming: dict[int, Incoming] = {}
        self.next_expiry = 0.0
        # TLS and HTTP/2 are negotiated by gunicorn in the thread: those connections keep its way
        self.buffering = not self.cfg.is_ssl and self.cfg.http_protocols in ("h1", ["h1"], ("h1",))
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        self.header_timeout, self.body_timeout, self.max_body, self.tmp_dir = limits()

    # --- connections in, and back after a response ------------------------------------------

    def accept(self, listener):
        if not self.buffering:
            return super().accept(listener)
        try:
            client, address = listener.accept()
        except (BlockingIOError, ConnectionAbortedError, InterruptedError):
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking
        self.read_request(conn, b"")

    def on_client_socket_readable(self, conn, client):
        if not self.buffering:
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.read_request(conn, b"", read_now=True)

    def finish_request(self, conn, fs):
        if not self.buffering or not self.alive or fs.cancelled() or fs.exception() or fs.result() is not True:
            return super().finish_request(conn, fs)
        leftover = conn.parser.unreader.take_buffered()  # a request pipelined behind this one
        conn.sock.setblocking(False)
        if leftover:
            self.read_request(conn, leftover, read_now=False)
            return
        conn.set_timeout()
        self.keepalived_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    # --- reading ----------------------------------------------------------------------------

    def read_request(self, conn, data: bytes, read_now: bool = False):
        """Read what is there; the poller waits for the rest (a whole request usually comes at once,
        and goes to a thread without a poller registration)."""
        item = Incoming(conn, time.monotonic() + self.header_timeout)
        if data and self.feed(item, data):
            return
        if read_now and self.receive(item):
            return
        self.incoming[id(conn)] = item
        item.registered = True
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_incoming, item))

    def on_incoming(self, item: Incoming, _sock):
        self.receive(item)

    def receive(self, item: Incoming) -> bool:
        """One read; whether the connection left the poller's hands (to a thread, or closed)."""
        want = RECV if item.body is None or item.chunked else min(RECV, item.remaining)
        try:
            data = item.conn.sock.recv(want)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self.close(item)
            return True
        return self.feed(item, data)

    def feed(self, item: Incoming, data: bytes) -> bool:
        if item.body is None:
            item.head += data
            if item.head[:1] in (b"\r", b"\n"):  # empty lines before a request line: ignored (RFC 9112 2.2)
                item.head = bytearray(item.head.lstrip(b"\r\n"))
            end = item.head.find(b"\r\n\r\n")
            if end < 0:
                if len(item.head) > HEAD_MAX:
                    return self.refuse(item, "431 Request Header Fields Too Large", "The header is too large.")
                return False
            head, data = bytes(item.head[: end + 4]), bytes(item.head[end + 4 :])
            lowered = head.lower()
            if b"\ncontent-length" not in lowered and b"\ntransfer-encoding" not in lowered:
                length, chunked, expect = None, False, False  # (most requests: skips the parsing)
            else:
                try:
                    length, chunked, expect = framing(head)
                except ValueError as exc:
                    return self.refuse(item, "400 Bad Request", f"Malformed request: {exc}.")
            if not length and not chunked:
                item.head = bytearray(head + data)
                return self.dispatch(item)
            if (length or 0) > self.max_body:
                return self.refuse(item, "413 Content Too Large", self.too_large())
            if expect:
                head = without_expect(head)
                if not data and head.split(b"\r\n", 1)[0].endswith(b"HTTP/1.1"):
                    try:
                        item.conn.sock.send(CONTINUE)
                    except OSError:
                        pass
            item.head = bytearray(head)
            item.body = tempfile.SpooledTemporaryFile(IN_MEMORY, dir=self.tmp_dir)
            item.remaining = length or 0
            item.chunked = Chunked() if chunked else None
        if data:
            item.body.write(data)
            item.received += len(data)
            if item.received > self.max_body:
                return self.refuse(item, "413 Content Too Large", self.too_large())
            if item.chunked is not None:
                try:
                    done = item.chunked.feed(data) is not None
                except ValueError as exc:
                    return self.refuse(item, "400 Bad Request", f"Malformed chunked body: {exc}.")
            else:
                item.remaining -= len(data)
                done = item.remaining <= 0
            if done:
                return self.dispatch(item)
        item.deadline = time.monotonic() + self.body_timeout
        return False

    def too_large(self) -> str:
        return f"The request is larger than the limit of {self.max_body - IN_MEMORY:,} bytes."

    def dispatch(self, item: Incoming) -> bool:
        """The whole request is here: to a thread, as gthread would hand it over."""
        conn = item.conn
        self.forget(item)
        conn.init()  # HTTP/1 parser; blocking socket (for the response)
        if not isinstance(conn.parser.unreader, BodyUnreader):
            conn.parser.unreader = BodyUnreader(conn.sock)
        if item.body is not None:
            item.body.seek(0)
            conn.parser.unreader.spool = item.body
        conn.parser.unreader.unread(bytes(item.head))
        conn.data_ready = True
        self.enqueue_req(conn)
        return True

    def forget(self, item: Incoming):
        if item.registered:
            item.registered = False
            del self.incoming[id(item.conn)]
            try:
                self.poller.unregister(item.conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def close(self, item: Incoming) -> bool:
        self.forget(item)
        if item.body is not None:
            item.body.close()
        self.nr_conns -= 1
        item.conn.close()
        return True

    def refuse(self, item: Incoming, status: str, detail: str):
        body = json.dumps({"detail": detail}).encode()
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        try:
            item.conn.sock.send(head.encode() + b"Connection: close\r\n\r\n" + body)
        except OSError:
            pass
        self.log.info("Refused a request from %s: %s", item.conn.client, status)
        return self.close(item)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        if now < self.next_expiry and self.alive:
            return
        self.next_expiry = now + 0.5
        # a stopping worker waits for bodies being received (up to graceful_timeout), not for heads
        expired = [item for item in self.incoming.values() if item.deadline < now or not (self.alive or item.body)]
        for item in expired:
            self.log.debug("Closed a connection from %s: its request came too slowly", item.conn.client)
            self.close(item)
