"""Safe extraction of uploaded ZIP archives.

Member names are never used as paths: every member is written under a generated name in the
destination folder, so no name can escape it. Names are kept only to report on. Sizes are
counted while decompressing; the sizes a ZIP header claims are not trusted.
"""

from __future__ import annotations

import lzma
import os
import stat
import zipfile
import zlib
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

CHUNK_BYTES = 1024 * 1024
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


def extract_zip(
    zip_path: str | os.PathLike,
    dest_dir: str | os.PathLike,
    limits: Limits = Limits(),
    progress: Callable[[int, int], None] | None = None,
) -> ExtractResult:
    """Extract the file members of ``zip_path`` into ``dest_dir`` as ``000001``, ``000002``...

    Raises ArchiveError when the archive as a whole is unusable (not a ZIP, corrupt directory,
    empty, too many members, too large). Problems with single members are returned in
    ``skipped``; the other members are still extracted. ``progress(done, total)`` is called
    with counts of members.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, ValueError, EOFError):  # ValueError: e.g. a name flagged UTF-8 that is not
        raise ArchiveError("The file is not a ZIP archive, or it is truncated or corrupt.") from None
    except NotImplementedError as exc:
        raise ArchiveError(f"The archive uses a ZIP feature that is not supported ({_short(exc)}).") from None
    except OSError as exc:
        raise ArchiveError(f"The archive could not be read: {exc.strerror or exc}.") from None
    with zf:
        # not ZipInfo.is_dir(): on Python 3.11 it raises IndexError for an empty name
        infos = [info for info in zf.infolist() if not info.filename.endswith("/")]
        if not infos:
            raise ArchiveError("The ZIP archive is empty: it holds no files.")
        if len(infos) > limits.max_members:
            raise ArchiveError(
                f"The archive holds {len(infos):,} files; at most {limits.max_members:,} are accepted per upload."
            )
        result = ExtractResult(members=len(infos))
        total_bytes = 0
        for number, info in enumerate(infos, start=1):
            if progress:
                progress(number - 1, len(infos))
            if is_system_file(info.filename):
                result.skipped.append(Skipped(info.filename, "operating-system file, not DICOM"))
                continue
            problem = member_problem(info)
            if problem:
                result.skipped.append(Skipped(info.filename, problem))
                continue
            target = dest / f"{number:06d}"
            budget = limits.max_total_bytes - total_bytes
            written, problem = _copy_member(zf, info, target, limits, budget)
            if problem == "total":
                target.unlink(missing_ok=True)
                raise ArchiveError(
                    f"The archive expands to more than {limits.max_total_bytes / 1024**3:.1f} GiB; "
                    "split it into smaller uploads."
                )
            if problem:
                target.unlink(missing_ok=True)
                result.skipped.append(Skipped(info.filename, problem))
                continue
            total_bytes += written
            result.files.append(Extracted(info.filename, target, written))
        if progress:
            progress(len(infos), len(infos))
    return result


class _Unreadable(Exception):
    """The member's stored bytes cannot be read back."""


def _copy_member(zf, info, target: Path, limits: Limits, budget: int) -> tuple[int, str | None]:
    """Stream one member to ``target`` counting real bytes. Returns (bytes, problem)."""
    member_cap = min(limits.max_member_bytes, budget)
    ratio_cap = max(RATIO_GRACE_BYTES, info.compress_size * limits.max_ratio)
    written = 0
    try:
        # closing(): returning mid-member must release the member's reader now, not at garbage collection
        with open(target, "wb") as out, closing(_member_chunks(zf, info)) as chunks:
            for chunk in chunks:
                if written == 0 and chunk[:4] == b"PK\x03\x04":
                    return 0, "nested ZIP archive (not extracted; upload it on its own)"
                written += len(chunk)
                if written > ratio_cap:
                    return written, (
                        f"expands more than {limits.max_ratio} times its compressed size "
                        "(possible zip bomb; not extracted)"
                    )
                if written > member_cap:
                    if member_cap == budget and budget < limits.max_member_bytes:
                        return written, "total"
                    return written, f"larger than {limits.max_member_bytes / 1024**3:.1f} GiB (not extracted)"
                out.write(chunk)
    except _Unreadable as exc:
        return written, f"corrupt in the archive ({exc})"
    except NotImplementedError as exc:
        return written, f"cannot be decompressed ({_short(exc)})"
    except RuntimeError as exc:  # e.g. "File is encrypted" for strong-encryption members
        return written, f"cannot be read ({_short(exc)})"
    return written, None


def _member_chunks(zf, info):
    """Yield the member's decompressed bytes; any failure to read or decode them raises _Unreadable.

    Translated here, away from the writing, because bz2 reports bad data and a seek to a header
    offset before the file start as OSError: caught around the writes too, it would hide a full disk.
    """
    try:
        with zf.open(info) as src:
            while chunk := src.read(CHUNK_BYTES):
                yield chunk
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError) as exc:
        raise _Unreadable(_short(exc)) from exc


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:120]
