"""Header values read from raw bytes agree with pydicom's own conversion, on every test file."""

from __future__ import annotations

from pathlib import Path

import pydicom.data
import pytest

from studies.imaging import headers

SHARED = Path(__file__).resolve().parents[3] / "shared" / "dicom"


def test_files() -> list[Path]:
    shipped = Path(pydicom.data.__file__).parent / "test_files"  # what ships inside pydicom (no downloads)
    files = [p for p in sorted(shipped.rglob("*")) if p.is_file() and p.suffix not in (".py", ".txt", ".json", ".gz")]
    if SHARED.is_dir():
        files += [p for p in sorted(SHARED.rglob("*")) if p.is_file() and p.suffix not in (".md", ".tsv", ".txt")]
    return files


test_files.__test__ = False


def read_both(path: Path, monkeypatch):
    monkeypatch.setattr(headers, "FAST_VALUES", False)
    slow = headers.read_header(path, path.name)
    monkeypatch.setattr(headers, "FAST_VALUES", True)
    fast = headers.read_header(path, path.name)
    return slow, fast


def test_fast_values_give_the_same_headers_as_pydicom(monkeypatch):
    files = test_files()
    read = 0
    for path in files:
        slow, fast = read_both(path, monkeypatch)
        assert fast == slow, path
        read += isinstance(fast, headers.Header)
    assert read >= (100 if SHARED.is_dir() else 40), f"only {read} image headers among {len(files)} files"


@pytest.mark.parametrize(
    "vr, raw, value",
    [
        ("DS", b"-0.5\\1e2 ", [-0.5, 100.0]),
        ("IS", b"12 ", 12),
        ("UI", b"1.2.3\x00", "1.2.3"),
        ("CS", b"ORIGINAL\\PRIMARY\\AXIAL ", ["ORIGINAL", "PRIMARY", "AXIAL"]),
        ("US", b"\x00\x02", 512),
        ("SS", b"\xff\xff\x01\x00", [-1, 1]),
        ("PN", b"Doe^Jane ", "Doe^Jane"),
    ],
)
def test_raw_values(vr, raw, value):
    element = pydicom.dataelem.RawDataElement(0x00280030, vr, len(raw), raw, 0, False, True)
    assert headers._fast_value(element) == value


@pytest.mark.parametrize(
    "vr, raw",
    [
        ("PN", "Müller^Anna".encode("latin-1")),  # not ASCII: its character set decides
        ("PN", b"\x1b$B...\x1b(B"),  # ISO 2022 escape sequences
        ("DS", b"1.5\\abc"),  # malformed: pydicom's tolerant reading decides
        ("LT", b"a\\b"),  # free text: a backslash is not a separator
        ("FD", b"\x00" * 8),
        ("US", b"\x01\x02\x03"),
    ],
)
def test_everything_else_goes_to_pydicom(vr, raw):
    element = pydicom.dataelem.RawDataElement(0x00100010, vr, len(raw), raw, 0, False, True)
    assert headers._fast_value(element) is headers._SLOW
