"""Slow clients against the web server that ``make run`` and ``serve web`` start
(dicomviewer/web_worker.py): half-sent requests wait in the worker's poller, never in a thread."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from django.conf import settings
from django.db import connection

from dicomviewer.web_worker import Chunked, framing, without_expect
from tests.conftest import WebProcess
from tests.conftest import test_database_url as database_url
from tests.test_image_urls import templates, volume  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def web(tmp_path, media_root, **extra) -> WebProcess:
    env = {
        "DATABASE_URL": database_url(connection.settings_dict),
        "SECRET_KEY": settings.SECRET_KEY,  # image URLs signed here are checked there
        "MEDIA_ROOT": str(media_root),
        "VAR_DIR": str(tmp_path / "web-var"),
        "SCRATCH_DIR": str(tmp_path / "web-scratch"),
        "WEB_WORKERS": "2",
        "WEB_THREADS": "4",
        **extra,
    }
    return WebProcess(env, tmp_path / "web.log")


def connect(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    return sock


def answer(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


SLOW_BODY = (
    b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\nusername=x"
)


def test_fifty_slow_clients_do_not_stop_healthz_or_images(api, volume, tmp_path, media_root):  # noqa: F811
    image = templates(api, volume)["axial"].replace("{index}", "2")
    server = web(tmp_path, media_root)
    slow = []
    try:
        for k in range(50):
            if k % 6 == 0:
                slow.append(connect(server.port, b"GET /healthz HT"))  # a partial request line
            elif k % 6 == 3:
                slow.append(connect(server.port, b"\r\n\r\nGET /healthz HT"))  # after empty lines
            elif k % 3 == 1:
                slow.append(connect(server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "))
            else:
                slow.append(connect(server.port, SLOW_BODY))  # a body 30 bytes short
            time.sleep(0.02)  # one at a time: both server processes get their share
        time.sleep(0.5)  # all accepted, and (with plain gthread) every thread stuck reading
        for _ in range(4):
            for path in ("/healthz", image):  # a new connection each: either server process
                started = time.monotonic()
                response = requests.get(server.url + path, timeout=5, headers={"Connection": "close"})
                elapsed = time.monotonic() - started
                assert response.status_code == 200, path
                assert elapsed < 1.0, f"{path} took {elapsed:.2f}s behind 50 slow clients"
            for sock in slow[2::3]:
                sock.sendall(b"y")  # the bodies trickle on, a byte at a time
        assert requests.get(server.url + image, timeout=10).content[:4] == b"\x89PNG"
        body = slow[2]
        body.sendall(b"&password=" + b"z" * 19)  # the rest of the 40 bytes: the request goes through
        reply = answer(body)
        assert reply.startswith(b"HTTP/1.1 400") and b"Unable to log in" in reply, reply[:300]
    finally:
        for sock in slow:
            sock.close()
        server.stop()


def test_timeouts_limits_and_framing_of_the_reading_poller(tmp_path, media_root):
    server = web(tmp_path, media_root, WEB_HEADER_TIMEOUT="1", WEB_BODY_TIMEOUT="1", MAX_UPLOAD_BYTES="1000")
    try:
        # too slow: closed after the head's time (and a body's pause), without a reply
        for data in (b"GET /healthz HT", SLOW_BODY):
            sock = connect(server.port, data)
            started = time.monotonic()
            assert answer(sock) == b"" and time.monotonic() - started < 4
        # larger than MAX_UPLOAD_BYTES (+1 MiB of envelope): 413 at once, nothing read
        sock = connect(server.port, b"POST /api/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        reply = answer(sock)
        assert reply.startswith(b"HTTP/1.1 413") and b"limit of 1,000 bytes" in reply
        # a head without an end, past 64 KiB: 431
        reply = answer(connect(server.port, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000))
        assert reply.startswith(b"HTTP/1.1 431")
        # Expect: 100-continue answered by the poller (once), then the body goes through
        sock = connect(
            server.port,
            b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\n",
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"username=x")
        reply = answer(sock)
        assert reply.startswith(b"HTTP/1.1 400") and b"100 Continue" not in reply
        # a chunked body in pieces, then a pipelined request behind it on the same connection
        sock = connect(
            server.port,
            b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n5\r\nusern",
        )
        time.sleep(0.2)
        pipelined = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        sock.sendall(b"\r\n5\r\name=x\r\n0\r\n\r\n" + pipelined)
        reply = answer(sock)
        assert reply.startswith(b"HTTP/1.1 4") and reply.count(b"HTTP/1.1 ") == 2, reply[:500]
        assert b'"status": "ok"' in reply or b"HTTP/1.1 200" in reply.split(b"\r\n\r\n", 1)[1]
    finally:
        server.stop()


def test_chunked_end_is_found_whatever_the_pieces():
    body = b"4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n"
    for cut in range(1, len(body)):
        for pieces in ([body[:cut], body[cut:] + b"NEXT"], [body[i : i + cut] for i in range(0, len(body), cut)]):
            scanner, ends = Chunked(), None
            for piece in pieces:
                at = scanner.feed(piece)
                if at is not None:
                    ends = piece[at:]
                    break
            assert ends in (b"", b"NEXT"), (cut, pieces)
    for line in (b"zz", b"0x10", b"1_0", b"+5", b"-1", b" "):  # int(, 16) takes some; HTTP's grammar none
        with pytest.raises(ValueError):
            Chunked().feed(line + b"\r\n")


def test_framing_refuses_what_gunicorn_would():
    assert framing(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == (None, False, False)
    assert framing(b"POST / HTTP/1.1\r\ncontent-length: 12\r\nExpect: 100-Continue\r\n\r\n") == (12, False, True)
    assert framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == (None, True, False)
    for bad in (
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    ):
        with pytest.raises(ValueError):
            framing(bad)
    head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nA: b\r\n\r\n"
    assert without_expect(head) == b"POST / HTTP/1.1\r\nA: b\r\n\r\n"


def test_a_buffered_body_is_handed_out_in_socket_sized_pieces():
    """A 10 MB body read 64 KB at a time, as Django reads an upload: each piece taken from the
    buffer is at most what one socket read would give (not the rest of the body, copied again and
    again)."""
    import tempfile

    from dicomviewer.web_worker import BodyUnreader

    body = bytes(range(256)) * 40_000
    unreader = BodyUnreader(None)
    unreader.spool = tempfile.SpooledTemporaryFile(1024)
    unreader.spool.write(body)
    unreader.spool.seek(0)
    pieces, sizes = [], []
    chunk = unreader.chunk
    unreader.chunk = lambda hint=None: sizes.append(len(data := chunk(hint))) or data
    while (left := len(body) - sum(map(len, pieces))) > 0:
        pieces.append(unreader.read(min(65536, left), read_ahead=left))
    assert b"".join(pieces) == body and max(sizes) <= BodyUnreader.max_body_chunk
