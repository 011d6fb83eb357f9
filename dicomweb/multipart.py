"""Media types and multipart/related bodies (RFC 2387), streamed both ways. No Django imports."""

from __future__ import annotations

import mmap
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

CRLF = b"\r\n"
READ_BYTES = 1024 * 1024


@dataclass
class MediaRange:
    type: str  # "multipart/related", "image/png", "*/*"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def q(self) -> float:
        try:
            return float(self.params.get("q", "1"))
        except ValueError:
            return 0.0


def parse_media_type(text: str) -> MediaRange:
    """``multipart/related; type="application/dicom"; boundary=x`` -> MediaRange (keys lower-case)."""
    pieces = _split(text, ";")
    params = {}
    for piece in pieces[1:]:
        name, _, value = piece.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return MediaRange(pieces[0].strip().lower() if pieces else "", params)


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, best first (q, then order); ``*/*`` when absent."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges = [parse_media_type(part) for part in _split(header, ",") if part.strip()]
    ranges = [r for r in ranges if r.q > 0]
    return sorted(ranges, key=lambda r: -r.q)


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes."""
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def new_boundary() -> str:
    return uuid.uuid4().hex


@dataclass
class Part:
    content_type: str
    data: bytes | None = None  # either bytes in memory...
    source: Callable[[], BinaryIO] | None = None  # ...or a file (opened when its turn comes), streamed
    location: str | None = None


def multipart_stream(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """The body of a multipart/related message, produced part by part (files in chunks)."""
    delimiter = b"--" + boundary.encode()
    for part in parts:
        head = [delimiter, b"Content-Type: " + part.content_type.encode()]
        if part.location:
            head.append(b"Content-Location: " + part.location.encode())
        yield CRLF.join(head) + CRLF + CRLF
        if part.source is not None:
            with part.source() as fp:
                while chunk := fp.read(READ_BYTES):
                    yield chunk
        else:
            yield part.data or b""
        yield CRLF
    yield delimiter + b"--" + CRLF


@dataclass
class ReceivedPart:
    headers: dict[str, str]
    start: int  # the part's body is buffer[start:end]
    end: int

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class MultipartError(ValueError):
    """The body is not a well-formed multipart message."""


def split_multipart(buffer: mmap.mmap | bytes, boundary: str) -> Iterator[ReceivedPart]:
    """The parts of a multipart body held in ``buffer`` (a memory map of the request body)."""
    delimiter = b"--" + boundary.encode()
    start = buffer.find(delimiter)
    if start < 0:
        raise MultipartError("the body does not contain the boundary of its Content-Type")
    position = start + len(delimiter)
    while True:
        if buffer[position : position + 2] == b"--":
            return  # the close delimiter
        line_end = buffer.find(CRLF, position)
        if line_end < 0:
            raise MultipartError("a part ends before its headers")
        header_end = buffer.find(CRLF + CRLF, line_end)
        if header_end == line_end:  # no headers at all: the blank line follows the delimiter
            header_end = line_end
        if header_end < 0:
            raise MultipartError("a part's headers are not terminated")
        headers = _headers(bytes(buffer[line_end + 2 : header_end]))
        body_start = header_end + 4
        body_end = buffer.find(CRLF + delimiter, body_start - 2)
        if body_end < 0:
            raise MultipartError("the last part is not closed by the boundary")
        yield ReceivedPart(headers, body_start, max(body_start, body_end))
        position = body_end + 2 + len(delimiter)


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip():
            headers[name.strip().lower()] = value.strip()
    return headers
