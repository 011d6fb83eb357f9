"""Fuzz the multipart splitter and media-type parsing (dicomweb/multipart.py).

Properties: what ``multipart_stream`` (a correct encoder: its boundary occurs in no part) wrote,
``split_multipart`` gives back part for part, byte for byte, with its headers; on any other bytes
it raises MultipartError (STOW answers 400 for it) or yields parts that lie inside the body, in
order; ``parse_media_type`` and ``parse_accept`` never raise.

Input: first byte even -> a message to encode (parts and boundary drawn from the bytes);
odd -> byte 1 is the boundary's length, then the boundary, then the body.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Iterator

from dicomweb import multipart
from fuzz.common import by_first_byte

BCHARS = (string.ascii_letters + string.digits + "'()+_,-./:=? ").encode()  # RFC 2046 boundary characters
HEADER_CHARS = bytes(range(0x20, 0x7F))


class Reader:
    """Draws values from the fuzzer's bytes (deterministic; zeros once they run out)."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1] if self.at <= len(self.data) else 0

    def take(self, count: int) -> bytes:
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def text(self, alphabet: bytes, most: int) -> str:
        return bytes(alphabet[b % len(alphabet)] for b in self.take(self.byte() % (most + 1))).decode("ascii")


def check_roundtrip(data: bytes) -> None:
    draw = Reader(data)
    boundary = draw.text(BCHARS, 70).rstrip(" ")
    if not boundary:
        return
    parts = []
    for _ in range(draw.byte() % 5):
        content_type = draw.text(HEADER_CHARS, 40).strip()
        location = draw.text(HEADER_CHARS, 40).strip() or None
        parts.append(multipart.Part(content_type, draw.take(draw.byte() * 4), location=location))
    delimiter = b"--" + boundary.encode()
    body = b"".join(multipart.multipart_stream(parts, boundary))
    if body.count(delimiter) != len(parts) + 1:
        return  # that boundary occurs in the content: a correct encoder would have chosen another
    received = list(multipart.split_multipart(body, boundary))
    assert len(received) == len(parts), (len(received), len(parts))
    for sent, got in zip(parts, received, strict=True):
        assert body[got.start : got.end] == sent.data
        assert got.content_type == sent.content_type
        assert got.headers.get("content-location") == sent.location


def check_garbage(data: bytes) -> None:
    size = data[0] if data else 0
    boundary, body = data[1 : 1 + size].decode("latin-1"), data[1 + size :]  # header values arrive as latin-1
    end = 0
    try:
        for part in multipart.split_multipart(body, boundary):
            assert end <= part.start <= part.end <= len(body), (end, part.start, part.end, len(body))
            assert isinstance(part.content_type, str)
            end = part.end
    except multipart.MultipartError:
        pass
    text = data.decode("latin-1")
    media = multipart.parse_media_type(text)
    assert media.type == media.type.lower() and isinstance(media.q, float)
    assert all(r.q > 0 for r in multipart.parse_accept(text))


def check(data: bytes) -> None:
    by_first_byte(data, check_roundtrip, check_garbage)


def seeds() -> Iterator[bytes]:
    parts = [
        multipart.Part("application/dicom", b"\x00" * 128 + b"DICM" + bytes(range(64))),
        multipart.Part('application/dicom; transfer-syntax="1.2.840.10008.1.2.1"', b"--not-the-boundary\r\n"),
        multipart.Part("image/png", b"", location="http://example.test/frames/1"),
    ]
    for boundary in ("b", "0123456789abcdef", "x-y.z"):
        body = b"".join(multipart.multipart_stream(parts, boundary))
        yield bytes([1, len(boundary)]) + boundary.encode() + body
        yield bytes([1, len(boundary)]) + boundary.encode() + body[: len(body) // 2]
    yield b"\x01\x00" + b'multipart/related; type="application/dicom"; boundary="a;b"; q=0.5, */*;q=0'
    yield b"\x00\x03abc\x02\x10application/dicom\x00\x04" + bytes(range(16))


if __name__ == "__main__":
    from fuzz.common import main

    main(check, ["dicomweb.multipart"])
    sys.exit(0)
