"""Fuzz the header reader and its raw-value converter (studies/imaging/headers.py).

Properties: ``_fast_value`` never raises, and whatever it answers, the values the header code
reads (``_str``, ``_int``, ``_float``, ``_floats``, ``_strs``) are the ones pydicom's own conversion
gives for the same bytes; ``read_header_prefix`` never raises and answers the same Header or
Skipped with the element walker (studies/imaging/walk.py) on and off and the converter on and off.

Input: first byte even -> one raw element (byte 1: VR, byte 2: keyword, byte 3 bit 0: big endian,
then the value bytes); odd -> the rest is a whole file given to ``read_header_prefix``, whole and
its first half.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom.data
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from fuzz.common import by_first_byte
from studies.imaging import headers

VRS = [*sorted(headers._SPLIT_VRS | set(headers._STRUCT_VRS)), "LT", "ST", "UT", "FD", "FL", "OB", "UN", None]
# keyword -> how headers.py reads it (comparing other readings would test code nobody runs)
STR, INT, FLOAT = headers._str, headers._int, headers._float
KEYWORDS = {
    "SOPInstanceUID": STR, "PatientName": STR, "PatientBirthDate": STR, "PatientSex": STR, "StudyTime": STR,
    "Modality": STR, "TransferSyntaxUID": STR, "SeriesNumber": INT, "InstanceNumber": INT, "Rows": INT,
    "Columns": INT, "NumberOfFrames": INT, "BitsAllocated": INT, "PixelRepresentation": INT,
    "SliceThickness": FLOAT, "RescaleSlope": FLOAT, "WindowCenter": FLOAT, "WindowWidth": FLOAT,
    "ImageType": lambda ds, keyword: "\\".join(headers._strs(ds, keyword)),  # as image_type is made
    "ImagePositionPatient": lambda ds, keyword: headers._floats(ds, keyword, 3),
    "ImageOrientationPatient": lambda ds, keyword: headers._floats(ds, keyword, 6),
    "PixelSpacing": lambda ds, keyword: headers._floats(ds, keyword, 2),
}  # fmt: skip
NAMES = list(KEYWORDS)
PATH = Path("/nonexistent/fuzz.dcm")


def raw_element(data: bytes) -> tuple[str, RawDataElement]:
    vr = VRS[data[0] % len(VRS)]
    keyword = NAMES[data[1] % len(NAMES)]
    little = not data[2] & 1
    value = data[3:]
    tag = headers._tag_for(keyword)[0]
    return keyword, RawDataElement(tag, vr, len(value), value, 0, vr is None, little)


def check_raw(data: bytes) -> None:
    if len(data) < 3:
        return
    keyword, element = raw_element(data)
    headers._fast_value(element, headers._tag_for(keyword)[1])  # raises nothing, whatever the bytes
    answers = []
    for fast in (True, False):
        headers.FAST_VALUES = fast
        try:
            answers.append(KEYWORDS[keyword](Dataset({element.tag: element}), keyword))
        finally:
            headers.FAST_VALUES = True
    assert answers[0] == answers[1], f"{keyword} ({element.VR}) {element.value!r}: {answers}"


def check_file(data: bytes) -> None:
    for head in (data, data[: len(data) // 2]):  # the whole file, and its first half (NEED_MORE or not)
        answers = []  # a frame count the data cannot hold is a Skipped before any per-frame list
        try:
            for walk, fast in ((True, True), (False, True), (False, False)):
                headers.FAST_WALK, headers.FAST_VALUES = walk, fast
                answers.append(headers.read_header_prefix(head, "fuzz.dcm", len(data), PATH))
        finally:
            headers.FAST_WALK = headers.FAST_VALUES = True
        for answer in answers:
            assert isinstance(answer, (headers.Header, headers.Skipped)) or (head != data and answer is None), answer
        assert answers[0] == answers[1] == answers[2], answers


def check(data: bytes) -> None:
    by_first_byte(data, check_raw, check_file)


def seeds() -> Iterator[bytes]:
    shipped = Path(pydicom.data.__file__).parent / "test_files"
    for path in sorted(shipped.rglob("*")):
        if path.is_file() and path.suffix not in (".py", ".txt", ".json", ".gz") and path.stat().st_size <= 16384:
            yield b"\x01" + path.read_bytes()
    samples = [b"1.2.840.10008.5.1.4.1.1.2\x00", b"Doe^Jane ", b"-0.5\\1e2 ", b"12 ", b"ORIGINAL\\PRIMARY ",
               b"\x00\x02", b"\xff\xff\x01\x00", b"20240102", b"101500.123 ", b"1\\0\\0\\0\\1\\0 "]  # fmt: skip
    for vr_index, vr in enumerate(VRS):
        for sample in samples:
            keyword = next((k for k in NAMES if headers._tag_for(k)[1] == vr), "PatientName")
            yield bytes([0, vr_index, NAMES.index(keyword), 0]) + sample


if __name__ == "__main__":
    from fuzz.common import main

    modules = ["studies.imaging.headers", "studies.imaging.walk", "pydicom.filereader", "pydicom.values"]
    main(check, [*modules, "pydicom.dataelem"])
    sys.exit(0)
