"""Fuzz the ZIP member reader (studies/imaging/archive.py).

Properties, for any bytes given as a ZIP: opening raises ArchiveError or gives an Archive; no
readable member has a name that leads outside a folder (absolute, drive, ``..``); a prefix is
never longer than asked; an extracted member is never larger than the per-member, ratio and
total limits allow, and is exactly what the standard library reads when that reads it too; a
member that fails leaves no file behind; nothing raises but MemberError and ArchiveError.
"""

from __future__ import annotations

import io
import os
import posixpath
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from studies.imaging import archive

# Small limits, so that fuzzed inputs reach them.
LIMITS = archive.Limits(max_members=64, max_total_bytes=256 * 1024, max_member_bytes=96 * 1024, max_ratio=20)
RATIO_GRACE = 4096
PREFIX = 132
_work: Path | None = None


def escapes(name: str) -> bool:
    """Whether ``name`` used as a path would leave the folder it is joined to."""
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return True
    joined = posixpath.normpath(posixpath.join("/dest", path))
    return joined != "/dest" and not joined.startswith("/dest/")


def check(data: bytes) -> None:
    global _work
    if _work is None:
        _work = Path(tempfile.mkdtemp(prefix="fuzz-archive-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    source, dest = _work / "upload.zip", _work / "out"
    source.write_bytes(data)
    dest.mkdir(exist_ok=True)
    for leftover in dest.iterdir():
        leftover.unlink()
    grace, archive.RATIO_GRACE_BYTES = archive.RATIO_GRACE_BYTES, RATIO_GRACE
    try:
        _check_archive(source, dest)
    finally:
        archive.RATIO_GRACE_BYTES = grace


def _check_archive(source: Path, dest: Path) -> None:
    try:
        opened = archive.Archive(source, LIMITS)
    except archive.ArchiveError:
        return
    with opened, zipfile.ZipFile(source) as reference:
        assert opened.member_count <= LIMITS.max_members
        for member in opened.members:
            assert not escapes(member.name), member.name
            assert archive.member_problem(member.info) is None
            target = dest / f"{member.number:06d}"
            try:
                head = opened.prefix(member, PREFIX)
                assert len(head) <= PREFIX
                written = opened.extract(member, target)
            except archive.MemberError:
                assert not target.exists(), "a member that failed left a file"
                continue
            except archive.ArchiveError:
                assert opened.total_written <= LIMITS.max_total_bytes + archive.OUT_CHUNK_BYTES
                return
            body = target.read_bytes()
            assert written == len(body)
            assert written <= LIMITS.max_member_bytes
            assert written <= max(RATIO_GRACE, member.info.compress_size * LIMITS.max_ratio)
            assert opened.total_written <= LIMITS.max_total_bytes
            assert body[:PREFIX] == head
            try:
                expected = reference.read(member.info)
            except Exception:  # the standard library is stricter in places (names, headers)
                continue
            assert body == expected, f"{member.name}: {len(body)} bytes; the standard library reads {len(expected)}"
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in dest.iterdir() if p.name.isdigit())


def seeds() -> Iterator[bytes]:
    dicom_like = b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", method) as zf:
            zf.writestr("study/IM0001.dcm", dicom_like)
            zf.writestr("study/", b"")
            zf.writestr("zeros.bin", b"\x00" * 8192)  # compresses far beyond the harness's ratio
            zf.writestr("../escape.dcm", b"x")
            zf.writestr("C:/drive.dcm", b"x")
            zf.writestr("__MACOSX/._IM0001.dcm", b"x")
        yield buffer.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        link = zipfile.ZipInfo("link")
        link.create_system, link.external_attr = 3, (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
        encrypted = zipfile.ZipInfo("secret.dcm")
        encrypted.flag_bits |= 0x1
        zf.writestr(encrypted, b"not really encrypted")
        zf.writestr("nested.zip", b"PK\x03\x04" + b"\x00" * 64)
    yield buffer.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        with zf.open("big.dcm", "w", force_zip64=True) as member:
            member.write(dicom_like * 3)
    yield buffer.getvalue()


if __name__ == "__main__":
    from fuzz.common import main

    main(check, ["studies.imaging.archive", "zipfile"])
    sys.exit(0)
