"""Safe reading of uploaded ZIP archives.

``Archive`` vets a ZIP once (member count, names, links, encryption) and then reads members on
demand: the first bytes of one (to recognise DICOM without extracting anything), or the whole
member into a file chosen by the caller. Member names are never used as paths; they are kept
only to report on. Sizes are counted while decompressing; the sizes a ZIP header claims are not
trusted. Members can be read from several threads at once, and from a forked process through
``reopened()``.

Stored and deflated members (nearly every ZIP) are read with positioned reads and inflated with
Intel ISA-L (about 2x faster than zlib); other methods go through the standard library.
"""

from __future__ import annotations

import copy
import lzma
import mmap
import os
import stat
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

try:
    from isal import isal_zlib as _inflate_lib
except ImportError:  # pragma: no cover - a platform without the isal wheel
    _inflate_lib = zlib

CHUNK_BYTES = 1024 * 1024
OUT_CHUNK_BYTES = 4 * 1024 * 1024  # inflate at most this much at a time: a bomb never balloons memory
# Members that small are never called bombs whatever their ratio (a run of zeros compresses
# 1000:1 and tiny files carry a fixed overhead).
RATIO_GRACE_BYTES = 1024 * 1024

SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", ".directory"}


class ArchiveError(Exception):
    """The archive as a whole cannot be used; the message is meant for the uploader."""


@dataclass(frozen=True)
class Limits:
    max_members: int = 50_000
    max_total_bytes: int = 8 * 1024**3
    max_member_bytes: int = 2 * 1024**3
    max_ratio: int = 200


@dataclass(frozen=True)
class Extracted:
    name: str  # the member's name inside the archive, for messages only
    path: Path  # where its bytes are now
    size: int


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass(frozen=True)
class Member:
    name: str  # for messages only
    number: int  # 1-based position among the archive's file members
    info: zipfile.ZipInfo


class MemberError(Exception):
    """One member cannot be used; the message is the reason, for the uploader."""


@dataclass
class ExtractResult:
    files: list[Extracted] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    members: int = 0  # file members seen (directories not counted)


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member must not be extracted, or None when it may be."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path in the archive (not extracted)"
    if ".." in parts:
        return "path leads outside the archive folder (not extracted)"
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        return "symbolic link (not extracted)"
    if info.flag_bits & 0x1:
        return "encrypted (password-protected) member (not extracted)"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        return f"compressed with an unsupported method ({info.compress_type}); re-create the ZIP with standard deflate"
    return None


def is_system_file(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if any(part == "__MACOSX" for part in parts):
        return True
    base = parts[-1] if parts else name
    return base.lower() in SYSTEM_FILES or base.startswith("._")


class Archive:
    """A vetted ZIP: ``members`` may be read, ``skipped`` may not (with reasons)."""

    def __init__(self, zip_path: str | os.PathLike, limits: Limits = Limits()):
        self.limits = limits
        try:
            self._zf = zipfile.ZipFile(zip_path)
        except (zipfile.BadZipFile, ValueError, EOFError):  # ValueError: e.g. a name flagged UTF-8 that is not
            raise ArchiveError("The file is not a ZIP archive, or it is truncated or corrupt.") from None
        except NotImplementedError as exc:
            raise ArchiveError(f"The archive uses a ZIP feature that is not supported ({_short(exc)}).") from None
        except OSError as exc:
            raise ArchiveError(f"The archive could not be read: {exc.strerror or exc}.") from None
        # not ZipInfo.is_dir(): on Python 3.11 it raises IndexError for an empty name
        infos = [info for info in self._zf.infolist() if not info.filename.endswith("/")]
        if not infos:
            self._zf.close()
            raise ArchiveError("The ZIP archive is empty: it holds no files.")
        if len(infos) > limits.max_members:
            self._zf.close()
            raise ArchiveError(
                f"The archive holds {len(infos):,} files; at most {limits.max_members:,} are accepted per upload."
            )
        self.member_count = len(infos)
        self.members: list[Member] = []
        self.skipped: list[Skipped] = []
        for number, info in enumerate(infos, start=1):
            if is_system_file(info.filename):
                self.skipped.append(Skipped(info.filename, "operating-system file, not DICOM"))
            elif problem := member_problem(info):
                self.skipped.append(Skipped(info.filename, problem))
            else:
                self.members.append(Member(info.filename, number, info))
        self._path = zip_path
        self._fd = os.open(zip_path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size
        # Bytes extract() wrote, checked against max_total_bytes as a sum of two slots: this process's
        # and a forked helper's (reopened()), in an anonymous mapping, which a fork shares (MAP_SHARED).
        # Each process adds to its own slot only, so no lock between processes is needed.
        self._written = memoryview(mmap.mmap(-1, 16)).cast("q")
        self._slot = 0
        self._lock = threading.Lock()

    def reopened(self) -> Archive:
        """This archive for one process forked from this one: the same members, read through its
        own file descriptor (a forked file object shares its offset with the parent's) and, only if a
        member needs it (bzip2, LZMA), its own ZipFile; what it extracts counts toward the same total."""
        other = copy.copy(self)
        other._zf = None
        other._fd = os.open(self._path, os.O_RDONLY)
        other._slot = 1
        other._lock = threading.Lock()
        return other

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def prefix(self, member: Member, size: int) -> bytes:
        """The first ``size`` bytes of a member (fewer if it is shorter); raises MemberError."""
        parts, count = [], 0
        try:
            with closing(self._chunks(member.info, want=size)) as chunks:
                for chunk in chunks:
                    parts.append(chunk[: size - count])
                    count += len(parts[-1])
                    if count >= size:
                        break
        except _Unreadable as exc:
            if count < size:  # a CRC error can only show at the end: a full prefix is still good
                raise MemberError(f"corrupt in the archive ({exc})") from None
        except (NotImplementedError, RuntimeError) as exc:
            raise MemberError(f"cannot be read ({_short(exc)})") from None
        return b"".join(parts)

    def extract(self, member: Member, target: Path) -> int:
        """Write the whole member to ``target``; returns its size. Raises MemberError for this
        member (nothing is left at ``target``) or ArchiveError when the archive's total is over."""
        try:
            written = self._write(member.info, target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return written

    def _write(self, info: zipfile.ZipInfo, target: Path) -> int:
        limits = self.limits
        ratio_cap = max(RATIO_GRACE_BYTES, info.compress_size * limits.max_ratio)
        written = 0
        try:
            # closing(): stopping mid-member must release the member's reader now, not at garbage collection
            with open(target, "wb") as out, closing(self._chunks(info)) as chunks:
                for chunk in chunks:
                    if written == 0 and chunk[:4] == b"PK\x03\x04":
                        raise MemberError("nested ZIP archive (not extracted; upload it on its own)")
                    written += len(chunk)
                    if written > ratio_cap:
                        raise MemberError(
                            f"expands more than {limits.max_ratio} times its compressed size "
                            "(possible zip bomb; not extracted)"
                        )
                    if written > limits.max_member_bytes:
                        raise MemberError(f"larger than {limits.max_member_bytes / 1024**3:.1f} GiB (not extracted)")
                    self._count(len(chunk))
                    out.write(chunk)
        except _Unreadable as exc:
            raise MemberError(f"corrupt in the archive ({exc})") from None
        except NotImplementedError as exc:
            raise MemberError(f"cannot be decompressed ({_short(exc)})") from None
        except RuntimeError as exc:  # e.g. "File is encrypted" for strong-encryption members
            raise MemberError(f"cannot be read ({_short(exc)})") from None
        return written

    @property
    def total_written(self) -> int:
        """Bytes extracted so far, by this process and a forked helper (what max_total_bytes limits)."""
        return self._written[0] + self._written[1]

    def _count(self, size: int) -> None:
        with self._lock:
            self._written[self._slot] += size
            if self.total_written > self.limits.max_total_bytes:
                raise ArchiveError(
                    f"The archive expands to more than {self.limits.max_total_bytes / 1024**3:.1f} GiB; "
                    "split it into smaller uploads."
                )

    def _chunks(self, info: zipfile.ZipInfo, want: int | None = None):
        """The member's decompressed bytes; any failure to read or decode them raises _Unreadable.

        Translated here, away from the writing, because bz2 reports bad data and a seek to a header
        offset before the file start as OSError: caught around the writes too, it would hide a full disk.
        """
        if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            yield from self._raw_chunks(info, want)
            return
        if self._zf is None:
            self._zf = zipfile.ZipFile(self._path)
        try:
            with self._zf.open(info) as src:
                while chunk := src.read(CHUNK_BYTES):
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError) as exc:
            raise _Unreadable(_short(exc)) from exc

    def _raw_chunks(self, info: zipfile.ZipInfo, want: int | None = None):
        """Stored or deflated data by positioned reads (thread-safe), checked against its CRC.

        Output stops at the size the header declares, as the standard library does; a stream that
        goes on past it (a lying zip bomb) then fails its CRC."""
        header = os.pread(self._fd, 30, info.header_offset) if info.header_offset >= 0 else b""
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise _Unreadable("bad local file header")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        position = info.header_offset + 30 + name_length + extra_length
        remaining = info.compress_size
        if position + remaining > self._size:
            raise _Unreadable("member data runs past the end of the archive")
        inflater = _inflate_lib.decompressobj(wbits=-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
        left, crc = info.file_size, 0
        read_size = CHUNK_BYTES if want is None else 16 * 1024  # a prefix needs little
        out_size = OUT_CHUNK_BYTES if want is None else want
        try:
            while remaining > 0 and left > 0:
                raw = os.pread(self._fd, min(read_size, remaining), position)
                if not raw:
                    raise _Unreadable("truncated member data")
                position += len(raw)
                remaining -= len(raw)
                pending = raw
                while pending and left > 0:
                    if inflater is None:
                        out, pending = pending[:left], b""
                    else:
                        out = inflater.decompress(pending, min(left, out_size))
                        pending = inflater.unconsumed_tail
                    if not out:
                        break
                    left -= len(out)
                    crc = zlib.crc32(out, crc)
                    yield out
        except (zlib.error, _inflate_lib.error) as exc:
            raise _Unreadable(_short(exc)) from exc
        if crc != info.CRC:
            raise _Unreadable("Bad CRC-32")


def extract_zip(
    zip_path: str | os.PathLike,
    dest_dir: str | os.PathLike,
    limits: Limits = Limits(),
    progress: Callable[[int, int], None] | None = None,
    on_file: Callable[[Extracted], None] | None = None,
) -> ExtractResult:
    """Extract the file members of ``zip_path`` into ``dest_dir`` as ``000001``, ``000002``...

    Raises ArchiveError when the archive as a whole is unusable (not a ZIP, corrupt directory,
    empty, too many members, too large). Problems with single members are returned in
    ``skipped``; the other members are still extracted. ``on_file(extracted)`` is called as each
    file is written. ``progress(done, total)`` is called with counts of members.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    with Archive(zip_path, limits) as archive:
        result = ExtractResult(members=archive.member_count, skipped=list(archive.skipped))
        total = archive.member_count
        if progress:
            progress(0, total)
        for member in archive.members:
            if progress and member.number > 1:
                progress(member.number - 1, total)
            target = dest / f"{member.number:06d}"
            try:
                size = archive.extract(member, target)
            except MemberError as exc:
                result.skipped.append(Skipped(member.name, str(exc)))
                continue
            extracted = Extracted(member.name, target, size)
            result.files.append(extracted)
            if on_file:
                on_file(extracted)
        if progress:
            progress(total, total)
    return result


class _Unreadable(Exception):
    """The member's stored bytes cannot be read back."""


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:120]
