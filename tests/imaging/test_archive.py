"""Safe ZIP extraction: every archive is built here with zipfile/struct, hostile ones by patching headers."""

from __future__ import annotations

import io
import os
import random
import re
import stat
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from studies.imaging import archive
from studies.imaging.archive import ArchiveError, Extracted, Limits, extract_zip, is_system_file, member_problem

DICOM_FILE = Path("/work/shared/dicom/mr-transfer-syntaxes-dcmqats/1.dcm")
needs_dicom = pytest.mark.skipif(not DICOM_FILE.is_file(), reason=f"sample DICOM file {DICOM_FILE} is not available")

# Offsets of header fields: (local file header, central directory entry), and their struct format.
FIELDS = {
    "version": (4, 6, "<H"),
    "flag_bits": (6, 8, "<H"),
    "crc": (14, 16, "<L"),
    "file_size": (22, 24, "<L"),
}


def payload(size: int, seed: int = 0) -> bytes:
    """Incompressible bytes, so deflate cannot make them look like a bomb."""
    return random.Random(seed).randbytes(size)


def make_zip(members, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """``members``: (name or ZipInfo, bytes) pairs; a name ending in "/" is a directory entry."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def header_offsets(data: bytes, name: str) -> tuple[int, int]:
    """Offsets of member ``name``'s local header and central directory entry."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local, pos = zf.getinfo(name).header_offset, zf.start_dir
    while True:
        name_len, extra_len, comment_len = struct.unpack_from("<3H", data, pos + 28)
        if data[pos + 46 : pos + 46 + name_len] == name.encode():
            return local, pos
        pos += 46 + name_len + extra_len + comment_len


def patch_member(data: bytes, name: str, **fields: int) -> bytes:
    """Overwrite header fields of one member in both its local header and the central directory."""
    local, central = header_offsets(data, name)
    out = bytearray(data)
    for field, value in fields.items():
        local_at, central_at, fmt = FIELDS[field]
        struct.pack_into(fmt, out, local + local_at, value)
        struct.pack_into(fmt, out, central + central_at, value)
    return bytes(out)


def flip_data_byte(data: bytes, name: str) -> bytes:
    """Corrupt one byte in the middle of a member's compressed data, leaving every header intact."""
    local, _ = header_offsets(data, name)
    name_len, extra_len = struct.unpack_from("<2H", data, local + 26)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        compressed = zf.getinfo(name).compress_size
    out = bytearray(data)
    out[local + 30 + name_len + extra_len + compressed // 2] ^= 0xFF
    return bytes(out)


def empty_members_zip(count: int) -> bytes:
    """A ZIP64 archive of ``count`` empty stored members, written directly: zipfile needs ~1 s for 100,000."""
    locals_, centrals, offset = [], [], 0
    for number in range(count):
        name = b"%06d.dcm" % number
        local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0) + name
        centrals.append(
            struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset)
            + name
        )
        locals_.append(local)
        offset += len(local)
    central = b"".join(centrals)
    zip64_end = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(central), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(central), offset, 0)
    return b"".join(locals_) + central + zip64_end + locator + end


class Sandbox:
    """An upload and its destination inside one temp dir, so anything written outside dest shows up."""

    def __init__(self, root: Path):
        self.root = root
        self.upload = root / "upload" / "study.zip"
        self.dest = root / "jail" / "out"
        self.upload.parent.mkdir()

    def extract(self, data: bytes, limits: Limits = Limits(), progress=None):
        self.upload.write_bytes(data)
        return extract_zip(self.upload, self.dest, limits, progress)

    def dest_files(self) -> list[Path]:
        return sorted(p for p in self.dest.rglob("*") if not p.is_dir())

    def assert_nothing_escaped(self) -> None:
        entries = set()
        for folder, dirs, files in os.walk(self.root):  # does not follow symlinks
            entries.update(Path(folder, name) for name in files)
            entries.update(Path(folder, name) for name in dirs if Path(folder, name).is_symlink())
        outside = {p for p in entries if p != self.upload and self.dest not in p.parents}
        assert not outside, f"written outside dest: {sorted(outside)}"
        assert not any(p.is_symlink() for p in entries)


@pytest.fixture
def box(tmp_path, monkeypatch) -> Sandbox:
    # A naive extractor resolves relative names against the cwd: keep that inside the sandbox too.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return Sandbox(tmp_path)


class CountingFile:
    def __init__(self, file, counts: dict[str, int], key: str):
        self.file, self.counts, self.key = file, counts, key
        counts.setdefault(key, 0)

    def write(self, data: bytes) -> int:
        self.counts[self.key] += len(data)
        return self.file.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.file.close()


@pytest.fixture
def disk_writes(monkeypatch) -> dict[str, int]:
    """Bytes written to each output file as they are written: a skipped member's file is gone afterwards."""
    counts: dict[str, int] = {}

    def counting_open(path, mode="r", *args, **kwargs):
        file = open(path, mode, *args, **kwargs)
        return CountingFile(file, counts, Path(path).name) if "w" in mode else file

    monkeypatch.setattr(archive, "open", counting_open, raising=False)
    return counts


def extracted_bytes(result) -> dict[str, bytes]:
    return {item.name: item.path.read_bytes() for item in result.files}


def skip_reasons(result) -> dict[str, str]:
    return {item.name: item.reason for item in result.skipped}


# --- normal archives -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_extracts_every_member_byte_identical(box, method):
    members = {"a.dcm": payload(5000, 1), "series/b.dcm": b"DICM" * 3000, "series/empty.dcm": b""}
    result = box.extract(make_zip(members.items(), method))
    assert extracted_bytes(result) == members
    assert result.skipped == []
    assert result.members == 3
    assert [item.size for item in result.files] == [len(data) for data in members.values()]


def test_member_names_are_never_used_as_paths(box):
    result = box.extract(make_zip([("deep/dir/x.dcm", b"x"), ("y.dcm", b"y")]))
    assert [item.path for item in result.files] == [box.dest / "000001", box.dest / "000002"]
    assert box.dest_files() == [box.dest / "000001", box.dest / "000002"]


@needs_dicom
def test_real_dicom_file_comes_out_byte_identical(box):
    original = DICOM_FILE.read_bytes()
    result = box.extract(make_zip([("PATIENT/STUDY/SERIES/IM0001", original)]))
    assert extracted_bytes(result) == {"PATIENT/STUDY/SERIES/IM0001": original}


def test_nested_folders_of_any_depth_extract(box):
    folders = [f"level{depth:02d}/" for depth in range(30)]
    deep_dirs = ["".join(folders[: depth + 1]) for depth in range(30)]
    name = deep_dirs[-1] + "image.dcm"
    result = box.extract(make_zip([*((d, b"") for d in deep_dirs), (name, b"deep")]))
    assert extracted_bytes(result) == {name: b"deep"}
    assert result.members == 1  # directory entries are not members


def test_non_ascii_names_are_fine(box):
    members = {"患者/画像.dcm": b"1", "Müller Straße/ß.dcm": b"2", "émoji 😀.dcm": b"3", "Ωmega/файл.dcm": b"4"}
    result = box.extract(make_zip(members.items()))
    assert extracted_bytes(result) == members


def test_names_that_only_look_suspicious_are_extracted(box):
    members = {"a..b.dcm": b"1", "..hidden.dcm": b"2", "dir/...dcm": b"3", "_x.dcm": b"4", "MACOSX.dcm": b"5"}
    result = box.extract(make_zip(members.items()))
    assert extracted_bytes(result) == members


def test_progress_is_reported_and_ends_at_total(box):
    calls = []
    members = [("a.dcm", b"a"), ("__MACOSX/._a.dcm", b"junk"), ("../evil.dcm", b"x"), ("b.dcm", b"b")]
    box.extract(make_zip(members), progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 4)
    assert calls[-1] == (4, 4)
    assert all(total == 4 for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


# --- hostile member names and types ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.dcm", "outside"),
        ("a/../../evil.dcm", "outside"),
        ("../../../../../../../../tmp/evil.dcm", "outside"),
        ("..\\..\\evil.dcm", "outside"),
        ("sub\\..\\..\\evil.dcm", "outside"),
        ("C:\\evil.dcm", "absolute"),
        ("C:/evil.dcm", "absolute"),
        ("c:evil.dcm", "absolute"),
        ("\\evil.dcm", "absolute"),
    ],
)
def test_rejects_path_traversal(box, name, reason):
    result = box.extract(make_zip([("good.dcm", b"good"), (name, b"evil"), ("after.dcm", b"after")]))
    assert extracted_bytes(result) == {"good.dcm": b"good", "after.dcm": b"after"}
    assert reason in skip_reasons(result)[name]
    assert "not extracted" in skip_reasons(result)[name]
    box.assert_nothing_escaped()


def test_rejects_absolute_paths(box):
    # The target of a naive extractor is inside the sandbox, so writing it would be caught below.
    name = str(box.root / "absolute-escape.dcm")
    result = box.extract(make_zip([("good.dcm", b"good"), (name, b"evil"), ("/etc/x", b"evil")]))
    assert extracted_bytes(result) == {"good.dcm": b"good"}
    assert "absolute path" in skip_reasons(result)[name]
    assert "absolute path" in skip_reasons(result)["/etc/x"]
    box.assert_nothing_escaped()


def test_rejects_symlink_members(box):
    link = zipfile.ZipInfo("link.dcm")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    result = box.extract(make_zip([(link, str(box.root / "target").encode()), ("good.dcm", b"good")]))
    assert extracted_bytes(result) == {"good.dcm": b"good"}
    assert "symbolic link" in skip_reasons(result)["link.dcm"]
    box.assert_nothing_escaped()


def test_unix_permissions_of_a_regular_file_are_not_mistaken_for_a_symlink(box):
    regular = zipfile.ZipInfo("regular.dcm")
    regular.create_system = 3
    regular.external_attr = (stat.S_IFREG | 0o755) << 16
    result = box.extract(make_zip([(regular, b"ok")]))
    assert extracted_bytes(result) == {"regular.dcm": b"ok"}


def test_rejects_encrypted_members(box):
    data = patch_member(make_zip([("secret.dcm", b"x" * 100), ("good.dcm", b"good")]), "secret.dcm", flag_bits=0x1)
    result = box.extract(data)
    assert extracted_bytes(result) == {"good.dcm": b"good"}
    assert "encrypted" in skip_reasons(result)["secret.dcm"]
    box.assert_nothing_escaped()


@pytest.mark.parametrize(
    "name", ["__MACOSX/._scan.dcm", "__MACOSX/sub/scan.dcm", "series/._IM0001", ".DS_Store", "a/Thumbs.db", "THUMBS.DB"]
)
def test_operating_system_files_are_skipped_and_counted(box, name):
    result = box.extract(make_zip([("scan.dcm", b"scan"), (name, b"junk")]))
    assert extracted_bytes(result) == {"scan.dcm": b"scan"}
    assert list(skip_reasons(result)) == [name]
    assert result.members == 2
    assert len(box.dest_files()) == 1


def test_nested_zip_is_skipped(box):
    inner = make_zip([("inner.dcm", b"inner")])
    result = box.extract(make_zip([("inner.zip", inner), ("scan.dcm", b"scan")]))
    assert extracted_bytes(result) == {"scan.dcm": b"scan"}
    assert skip_reasons(result)["inner.zip"].startswith("nested ZIP")
    assert len(box.dest_files()) == 1


def test_zip_signature_after_the_start_is_not_a_nested_zip(box):
    data = b"\0" * 128 + b"DICM" + b"PK\x03\x04" + payload(100)
    result = box.extract(make_zip([("scan.dcm", data)]))
    assert extracted_bytes(result) == {"scan.dcm": data}


# --- size limits and bombs ----------------------------------------------------------------------------


def test_too_many_members_fails_quickly_before_extracting_anything(box):
    data = empty_members_zip(100_000)
    calls = []
    started = time.monotonic()
    with pytest.raises(ArchiveError, match=r"holds 100,000 files; at most 50,000"):
        box.extract(data, Limits(max_members=50_000), progress=lambda *args: calls.append(args))
    assert time.monotonic() - started < 3
    assert calls == []
    assert box.dest_files() == []


def test_direct_builder_makes_a_readable_archive(box):
    # Guards the hand-written archive above: the same bytes, smaller, must extract normally.
    result = box.extract(empty_members_zip(3))
    assert [(item.name, item.size) for item in result.files] == [
        ("000000.dcm", 0),
        ("000001.dcm", 0),
        ("000002.dcm", 0),
    ]


def test_member_count_at_the_limit_is_accepted_and_directories_do_not_count(box):
    members = [(f"d{n}/", b"") for n in range(5)] + [(f"f{n}.dcm", b"x") for n in range(5)]
    assert len(box.extract(make_zip(members), Limits(max_members=5)).files) == 5
    with pytest.raises(ArchiveError, match="at most 4"):
        box.extract(make_zip(members), Limits(max_members=4))


def test_oversized_member_is_skipped_and_its_partial_file_removed(box, monkeypatch, disk_writes):
    # Small chunks, so several are written before the cap is crossed.
    monkeypatch.setattr(archive, "CHUNK_BYTES", 4096)
    members = [("small.dcm", payload(10_000, 1)), ("big.dcm", payload(100_000, 2)), ("last.dcm", b"last")]
    result = box.extract(make_zip(members), Limits(max_member_bytes=50_000))
    assert extracted_bytes(result) == {"small.dcm": members[0][1], "last.dcm": b"last"}
    assert "larger than" in skip_reasons(result)["big.dcm"]
    assert len(box.dest_files()) == 2
    assert 0 < disk_writes["000002"] <= 50_000


def test_total_size_over_the_limit_fails_the_archive(box, monkeypatch, disk_writes):
    monkeypatch.setattr(archive, "CHUNK_BYTES", 4096)
    members = [(f"{n}.dcm", payload(40_000, n)) for n in range(3)]
    with pytest.raises(ArchiveError, match="expands to more than"):
        box.extract(make_zip(members), Limits(max_total_bytes=100_000))
    assert 80_000 < sum(disk_writes.values()) <= 100_000
    assert not (box.dest / "000003").exists()
    box.assert_nothing_escaped()


def test_total_size_exactly_at_the_limit_is_accepted(box):
    members = [(f"{n}.dcm", payload(40_000, n)) for n in range(3)] + [("empty.dcm", b"")]
    result = box.extract(make_zip(members), Limits(max_total_bytes=120_000))
    assert len(result.files) == 4


def extract_in_a_forked_process(source: archive.Archive, member: archive.Member, target: Path) -> int:
    """Its exit status: 0 when it extracted ``member`` through ``source.reopened()``, 3 on ArchiveError."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            source.reopened().extract(member, target)
            code = 0
        except ArchiveError:
            code = 3
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_what_a_forked_reader_extracts_counts_toward_the_same_total(box):
    box.upload.write_bytes(make_zip([(f"{n}.dcm", payload(40_000, n)) for n in range(3)]))
    with archive.Archive(box.upload, Limits(max_total_bytes=100_000)) as source:
        first, second, third = source.members
        assert extract_in_a_forked_process(source, first, box.root / "first") == 0
        source.extract(second, box.root / "second")  # 80,000 in all
        assert extract_in_a_forked_process(source, third, box.root / "third") == 3
        with pytest.raises(ArchiveError, match="expands to more than"):
            source.extract(third, box.root / "third")


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_a_reopened_archive_reads_through_its_own_descriptor(box, method):
    members = [(f"{n}.dcm", payload(5_000, n)) for n in range(3)]
    box.upload.write_bytes(make_zip(members, method))
    with archive.Archive(box.upload) as source:
        other = source.reopened()
        assert other._fd != source._fd
        assert [other.prefix(member, 100) for member in source.members] == [data[:100] for _, data in members]
        source.close()  # the first one's descriptors closed: the other still reads
        assert other.extract(source.members[2], box.root / "last") == 5_000
        assert (box.root / "last").read_bytes() == members[2][1]
        other.close()


def test_high_compression_ratio_member_is_skipped_as_bomb(box):
    members = [("bomb.dcm", bytes(5 * 1024 * 1024)), ("scan.dcm", payload(1000))]
    result = box.extract(make_zip(members))
    assert extracted_bytes(result) == {"scan.dcm": members[1][1]}
    assert "zip bomb" in skip_reasons(result)["bomb.dcm"]
    assert len(box.dest_files()) == 1


def test_small_members_are_never_called_bombs_whatever_their_ratio(box):
    zeros = bytes(archive.RATIO_GRACE_BYTES)
    assert extracted_bytes(box.extract(make_zip([("zeros.dcm", zeros)]))) == {"zeros.dcm": zeros}


def test_lying_zip_bomb_is_stopped_by_real_bytes(box, disk_writes):
    bomb, claimed = bytes(50 * 1024 * 1024), 1024
    honest = make_zip([("before.dcm", b"before"), ("bomb.dcm", bomb), ("after.dcm", b"after")])
    lying = patch_member(honest, "bomb.dcm", file_size=claimed)
    # The ratio check is lifted so that only the real-byte member cap (or zipfile's own checks) can stop it.
    result = box.extract(lying, Limits(max_member_bytes=10 * 1024**2, max_ratio=100_000))

    assert extracted_bytes(result) == {"before.dcm": b"before", "after.dcm": b"after"}
    assert re.match("corrupt|larger than", skip_reasons(result)["bomb.dcm"])
    assert disk_writes.get("000002", 0) <= 10 * 1024**2
    assert sum(p.stat().st_size for p in box.dest_files()) == len(b"before") + len(b"after")
    box.assert_nothing_escaped()


def test_lying_zip_bomb_with_matching_crc_yields_at_most_the_claimed_bytes(box):
    bomb, claimed = bytes(50 * 1024 * 1024), 1024
    honest = make_zip([("bomb.dcm", bomb), ("after.dcm", b"after")])
    lying = patch_member(honest, "bomb.dcm", file_size=claimed, crc=zlib.crc32(bomb[:claimed]))
    result = box.extract(lying, Limits(max_ratio=100_000))

    assert "after.dcm" in extracted_bytes(result)
    assert all(p.stat().st_size <= claimed for p in box.dest_files())
    assert all(item.size == item.path.stat().st_size for item in result.files)


def test_sizes_are_counted_not_taken_from_headers(box):
    # The header overstates the size far past every limit; the real bytes are small and must be accepted.
    data = payload(100_000)
    claims_three_gib = patch_member(make_zip([("scan.dcm", data)]), "scan.dcm", file_size=3 * 1024**3)
    result = box.extract(claims_three_gib, Limits(max_member_bytes=1024**2, max_total_bytes=2 * 1024**2))
    assert result.files == [Extracted("scan.dcm", box.dest / "000001", len(data))]
    assert (box.dest / "000001").read_bytes() == data


# --- corrupt members ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_member_with_corrupt_data_is_skipped_and_the_rest_extracted(box, method):
    members = {"first.dcm": payload(20_000, 1), "broken.dcm": payload(20_000, 2) + b"A" * 20_000, "last.dcm": b"L"}
    data = flip_data_byte(make_zip(members.items(), method), "broken.dcm")
    result = box.extract(data)
    assert extracted_bytes(result) == {"first.dcm": members["first.dcm"], "last.dcm": b"L"}
    assert "corrupt" in skip_reasons(result)["broken.dcm"]
    assert len(box.dest_files()) == 2


def test_member_whose_header_offset_points_before_the_file_is_skipped(box):
    data = bytearray(make_zip([("a.dcm", b"a"), ("b.dcm", b"b")]))
    end = data.rindex(b"PK\x05\x06")
    # Overstating where the directory starts shifts every member's header offset backwards.
    struct.pack_into("<L", data, end + 16, struct.unpack_from("<L", data, end + 16)[0] + 1000)
    result = box.extract(bytes(data))
    assert result.files == []
    assert all("corrupt" in reason for reason in skip_reasons(result).values())
    assert box.dest_files() == []


def test_member_without_a_name_does_not_crash(box):
    result = box.extract(make_zip([(zipfile.ZipInfo(""), b"nameless"), ("scan.dcm", b"scan")]))
    assert extracted_bytes(result)["scan.dcm"] == b"scan"
    assert len(result.files) + len(result.skipped) == 2


# --- whole-archive errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        payload(10_000),
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 50,
        b"Patient list\nthis is a text file somebody named .zip\n",
        b"",
    ],
    ids=["random-bytes", "pdf", "text", "zero-bytes"],
)
def test_not_a_zip_is_an_archive_error(box, data):
    with pytest.raises(ArchiveError, match="not a ZIP archive"):
        box.extract(data)


def test_truncated_zip_is_an_archive_error(box):
    data = make_zip([(f"{n}.dcm", payload(5000, n)) for n in range(4)])
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        box.extract(data[: len(data) // 2])
    assert box.dest_files() == []


@pytest.mark.parametrize("members", [[], [("a/", b""), ("a/b/", b"")]], ids=["no-members", "only-directories"])
def test_empty_zip_is_an_archive_error(box, members):
    with pytest.raises(ArchiveError, match="empty"):
        box.extract(make_zip(members))


def test_missing_upload_is_an_archive_error(tmp_path):
    with pytest.raises(ArchiveError, match="could not be read"):
        extract_zip(tmp_path / "missing.zip", tmp_path / "out")


def test_name_flagged_utf8_but_invalid_is_an_archive_error(box):
    data = make_zip([("é.dcm", b"x")]).replace("é.dcm".encode(), b"\xff\xfe.dcm")
    with pytest.raises(ArchiveError, match="not a ZIP archive"):
        box.extract(data)


def test_member_needing_an_unsupported_zip_version_is_an_archive_error(box):
    data = patch_member(make_zip([("a.dcm", b"x")]), "a.dcm", version=99)
    with pytest.raises(ArchiveError, match="not supported"):
        box.extract(data)


# --- the checks on their own ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../x", "a/../../b", "..\\x", "/etc/x", "\\x", "C:\\x", "C:/x", "D:x", "a/b/../../../c"]
)
def test_member_problem_rejects_escaping_names(name):
    assert member_problem(zipfile.ZipInfo(name)) is not None


@pytest.mark.parametrize("name", ["a.dcm", "a/b/c.dcm", "a..b", "..a", "a/.../b", "ü/ß.dcm", "a/./b.dcm"])
def test_member_problem_accepts_ordinary_names(name):
    assert member_problem(zipfile.ZipInfo(name)) is None


def test_member_problem_rejects_unsupported_compression():
    info = zipfile.ZipInfo("a.dcm")
    info.compress_type = 99  # AES
    assert "unsupported method" in member_problem(info)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("__MACOSX/x.dcm", True),
        ("a/__MACOSX/x.dcm", True),
        ("._x.dcm", True),
        ("a/._x.dcm", True),
        (".DS_Store", True),
        ("a\\Thumbs.db", True),
        ("desktop.ini", True),
        ("x.dcm", False),
        ("_x.dcm", False),
        ("MACOSX/x.dcm", False),
        ("a.DS_Store.dcm", False),
    ],
)
def test_is_system_file(name, expected):
    assert is_system_file(name) is expected


def test_skip_reasons_are_plain_language(box):
    members = [("../x.dcm", b"x"), ("/abs.dcm", b"x"), (".DS_Store", b"x"), ("n.zip", make_zip([("i", b"i")]))]
    result = box.extract(make_zip(members))
    for reason in skip_reasons(result).values():
        assert re.fullmatch(r"[A-Za-z][\w ,;.()'-]+", reason), reason
