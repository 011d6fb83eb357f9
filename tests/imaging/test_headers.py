"""Header values read from raw bytes agree with pydicom's own conversion, on every test file."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom.charset
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from studies.imaging import headers
from studies.imaging.walk import DEFER_SIZE, walk

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


# --- the element walker (studies/imaging/walk.py) against pydicom.dcmread ----------------------

PREFIXES = (8 * 1024, 64 * 1024)  # what studies/services/ingest.py hands read_header_prefix
ZIP_SAMPLE = 40  # members of each shared ZIP (evenly spread): the headers of a series are alike


def walk_cases(tmp_path: Path) -> list[tuple[Path, bytes]]:
    """Every test file, and a sample of the members of the shared ZIPs (written to ``tmp_path``)."""
    cases = [(path, path.read_bytes()) for path in test_files() if path.suffix != ".zip"]
    for archive in sorted(SHARED.rglob("*.zip")) if SHARED.is_dir() else []:
        with zipfile.ZipFile(archive) as zf:
            names = [info.filename for info in zf.infolist() if not info.is_dir()]
            for name in names[:: max(1, len(names) // ZIP_SAMPLE)]:
                path = tmp_path / f"{archive.stem}-{len(cases)}.dcm"
                path.write_bytes(zf.read(name))
                cases.append((path, path.read_bytes()))
    return cases


def answers(path: Path, data: bytes) -> list:
    """read_header on the file, then read_header_prefix on its first bytes as the ingest asks."""
    found = [headers.read_header(path, path.name)]
    for prefix in PREFIXES:
        found.append(headers.read_header_prefix(data[:prefix], path.name, len(data), path))
    return found


def answers_both_ways(path: Path, data: bytes, monkeypatch) -> tuple[list, list]:
    monkeypatch.setattr(headers, "FAST_WALK", False)
    read = answers(path, data)
    monkeypatch.setattr(headers, "FAST_WALK", True)
    return answers(path, data), read


def test_the_walker_gives_the_same_headers_as_pydicom(tmp_path, monkeypatch):
    cases = walk_cases(tmp_path)
    walked = {"file": 0, "8 KiB": 0}
    for path, data in cases:
        walker, reader = answers_both_ways(path, data, monkeypatch)
        assert walker == reader, path
        with open(path, "rb") as fp:
            walked["file"] += walk(data[: headers.WALK_BYTES], len(data), path, fp) is not None
        walked["8 KiB"] += walk(data[:8192]) is not None
    enough = 150 if SHARED.is_dir() else 50  # 194 and 183 of 384 files in November 2026, 68 and 64 of 171 without
    assert min(walked.values()) >= enough, f"{walked} walked among {len(cases)} files"


def assert_same_dataset(walked, read) -> None:
    """Same elements in the same order, raw ones field for field; same file meta (pydicom converts
    the group length and transfer syntax as it reads them; the walker leaves plain ones raw);
    same preamble, encodings and source for deferred reads."""
    assert type(walked) is type(read)
    assert list(walked._dict) == list(read._dict)
    for tag, element in read._dict.items():
        assert type(walked._dict[tag]) is type(element), tag
        assert walked._dict[tag] == element, tag
    assert list(walked.file_meta._dict) == list(read.file_meta._dict)
    for tag, element in read.file_meta._dict.items():
        mine = walked.file_meta._dict[tag]
        if type(mine) is not type(element):
            mine = walked.file_meta[tag]
        assert mine == element, tag
    for name in ("preamble", "original_encoding", "original_character_set", "_parent_encoding", "filename"):
        assert getattr(walked, name) == getattr(read, name), name
        assert getattr(walked.file_meta, name, None) == getattr(read.file_meta, name, None), name
    assert (walked.fileobj_type, walked.timestamp) == (read.fileobj_type, read.timestamp)
    if read.buffer is not None:
        assert walked.buffer.getvalue() == read.buffer.getvalue()


def test_the_walker_builds_the_dataset_pydicom_builds(tmp_path):
    walked = 0
    for path, data in walk_cases(tmp_path):
        for prefix in (None, *PREFIXES):
            head = data[:prefix]
            ds = walk(head)
            if ds is not None:
                assert_same_dataset(ds, pydicom.dcmread(io.BytesIO(head), defer_size=DEFER_SIZE, force=True))
                walked += 1
        with open(path, "rb") as fp:
            ds = walk(data[: headers.WALK_BYTES], len(data), path, fp)
        if ds is not None:
            assert_same_dataset(ds, pydicom.dcmread(path, defer_size=DEFER_SIZE, force=True))
            walked += 1
    assert walked >= (500 if SHARED.is_dir() else 200)


def small_file(syntax=ExplicitVRLittleEndian, charset=None, name="Doe^Jane", extra=None, pixels=64) -> bytes:
    """An 8x8 16-bit MR image written by pydicom (defined-length sequences, as it writes them)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "1.2.3.4.5"
    if charset:
        ds.SpecificCharacterSet = charset
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3.4.1"
    ds.PatientName, ds.PatientID, ds.Modality = name, "ID-1", "MR"
    ds.Rows = ds.Columns = pixels // 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if extra:
        extra(ds)
    ds.PixelData = bytes(range(256)) * (pixels * 2 * pixels // 8 // 256 + 1)
    ds.PixelData = ds.PixelData[: (pixels // 8) ** 2 * 2]
    buffer = io.BytesIO()
    ds.save_as(
        buffer,
        enforce_file_format=True,
        implicit_vr=syntax == ImplicitVRLittleEndian,
        little_endian=syntax != ExplicitVRBigEndian,
    )
    return buffer.getvalue()


def functional_groups(ds):
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = [0.5, 0.25], 2.0
    groups = Dataset()
    groups.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([groups])


def pet(ds):
    ds.Modality, ds.Units, ds.PatientWeight = "PT", "BQML", 70
    drug = Dataset()
    drug.RadionuclideTotalDose, drug.RadionuclideHalfLife = 3.7e8, 6586.2
    ds.RadiopharmaceuticalInformationSequence = Sequence([drug])


def modality_lut(ds):
    lut = Dataset()
    lut.add_new(0x00283002, "US", [4, 0, 16])  # LUTDescriptor
    lut.add_new(0x00283006, "US", [0, 1, 2, 3])  # LUTData
    lut.ModalityLUTType = "HU"
    ds.ModalityLUTSequence = Sequence([lut])


def undefined_length(ds):
    functional_groups(ds)
    ds["SharedFunctionalGroupsSequence"].is_undefined_length = True


def private_odd(ds):
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "UN", b"\x01\x02\x03")  # odd length, unknown content
    ds.add_new(0x00091002, "OB", b"\xff" * 5)
    ds.add_new(0x00091003, "LO", "odd")


def big_private(ds):
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "OB", b"\x00" * 5000)  # deferred by pydicom, and past an 8 KiB prefix


def read_all_ways(data: bytes, tmp_path: Path, monkeypatch) -> list:
    path = tmp_path / "edge.dcm"
    path.write_bytes(data)
    walker, reader = answers_both_ways(path, data, monkeypatch)
    assert walker == reader
    assert walker[0] == headers.read_header_prefix(data, "edge.dcm", len(data), path)
    return walker


@pytest.mark.parametrize(
    "syntax, extra",
    [
        (ExplicitVRLittleEndian, None),
        (ImplicitVRLittleEndian, None),
        (ExplicitVRLittleEndian, functional_groups),
        (ImplicitVRLittleEndian, functional_groups),
        (ExplicitVRLittleEndian, pet),
        (ImplicitVRLittleEndian, pet),
        (ExplicitVRLittleEndian, modality_lut),
        (ImplicitVRLittleEndian, modality_lut),
        (ExplicitVRLittleEndian, private_odd),
        (ImplicitVRLittleEndian, private_odd),
    ],
)
def test_the_walker_reads_ordinary_files(syntax, extra, tmp_path, monkeypatch):
    data = small_file(syntax, extra=extra)
    assert walk(data) is not None and walk(data).original_encoding[0] == (syntax == ImplicitVRLittleEndian)
    header = read_all_ways(data, tmp_path, monkeypatch)[0]
    assert isinstance(header, headers.Header) and header.patient_name == "Doe^Jane"
    assert header.transfer_syntax_uid == syntax and header.pixel_offset == len(data) - 128
    if extra is functional_groups:  # the raw sequence is read when asked for, in either encoding
        assert header.frames[0].spacing == (0.5, 0.25)
    if extra is pet:
        assert (header.pet.dose_bq, header.pet.half_life_s, header.pet.weight_kg) == (3.7e8, 6586.2, 70.0)
    assert header.has_modality_lut == (extra is modality_lut)


@pytest.mark.parametrize(
    "charset, name",
    [("ISO_IR 100", "Müller^Anna"), ("ISO_IR 192", "Ñandú^José=山田^太郎"), ("ISO_IR 144", "Иванов^Иван")],
)
def test_the_walker_keeps_the_character_set(charset, name, tmp_path, monkeypatch):
    data = small_file(charset=charset, name=name)
    assert walk(data).original_character_set == pydicom.charset.convert_encodings(charset)
    assert read_all_ways(data, tmp_path, monkeypatch)[0].patient_name == name


def test_what_the_walker_leaves_to_pydicom(tmp_path, monkeypatch):
    undefined = small_file(extra=undefined_length)
    assert walk(undefined) is None  # an undefined-length sequence
    assert read_all_ways(undefined, tmp_path, monkeypatch)[0].frames[0].spacing == (0.5, 0.25)
    plain = small_file()
    for data in (
        plain[128 + 4 :],  # no preamble
        small_file(syntax=ExplicitVRBigEndian),
        small_file(syntax=DeflatedExplicitVRLittleEndian),
        plain.replace(b"CS", b"c?", 1),  # VR bytes that are no VR
        plain[:-70],  # pixel data cut short (not deferred: shorter than pydicom defers)
    ):
        assert walk(data) is None
        read_all_ways(data, tmp_path, monkeypatch)


def test_the_walker_needs_the_header_whole(tmp_path, monkeypatch):
    data = small_file(extra=big_private, pixels=512)  # 64x64: pixels past the 8 KiB prefix
    start = data.index(b"ACME 1.0")
    for cut in (start - 3, start + 4, start + 20, start + 3000):  # in a tag, a value, a long value
        head = data[:cut]
        assert walk(head) is None
        for fast in (True, False):
            monkeypatch.setattr(headers, "FAST_WALK", fast)
            assert headers.read_header_prefix(head, "cut.dcm", len(data), tmp_path / "cut.dcm") is headers.NEED_MORE
        assert isinstance(read_all_ways(head, tmp_path, monkeypatch)[0], headers.Skipped)  # a whole file so cut
    assert walk(data[:8192]) is not None  # the pixels start within 8 KiB: deferred past its end
    assert read_all_ways(data, tmp_path, monkeypatch)[1] == read_all_ways(data, tmp_path, monkeypatch)[0]


def test_the_walker_defers_what_pydicom_defers(tmp_path):
    def long_values(ds):
        ds.add_new(0x00090010, "LO", "ACME 1.0")
        ds.add_new(0x00091001, "OB", b"\x01" * DEFER_SIZE)  # kept
        ds.add_new(0x00091002, "OB", b"\x02" * (DEFER_SIZE + 2))  # deferred

    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        for pixels in (8, 512):  # pixel data kept (128 bytes) and deferred (8 KiB)
            data = small_file(syntax, extra=long_values, pixels=pixels)
            path = tmp_path / "long.dcm"
            path.write_bytes(data)
            ds = walk(data)
            assert_same_dataset(ds, pydicom.dcmread(io.BytesIO(data), defer_size=DEFER_SIZE, force=True))
            assert ds.get_item(0x00091002, keep_deferred=True).value is None
            assert ds[0x00091002].value == b"\x02" * (DEFER_SIZE + 2)  # read from the buffer on access
            with open(path, "rb") as fp:
                ds = walk(data[:4096], len(data), path, fp)  # the pixels start in the first 4 KiB
            assert_same_dataset(ds, pydicom.dcmread(path, defer_size=DEFER_SIZE, force=True))
            assert ds[0x00091002].value == b"\x02" * (DEFER_SIZE + 2)  # read from the file


def test_the_walker_makes_its_datasets_the_quick_way():
    """It copies the attributes of datasets pydicom's constructors made, having checked once that the
    copies match what the constructors make; a pydicom that no longer matches gets the constructors
    (slower, as correct): this says so."""
    from studies.imaging import walk as walker

    assert walker._COPY_STATE and walker._copies_match()
