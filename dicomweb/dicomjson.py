"""DICOM JSON (PS3.18 F.2) from attribute values and from stored data sets. No Django imports.

``attribute(keyword, value)`` builds one ``{"vr": ..., "Value": [...]}`` entry with the VR from the
data dictionary; ``dataset_json(ds, bulk_uri)`` converts a whole pydicom data set, replacing pixel
data and other binary values longer than a threshold by ``{"BulkDataURI": bulk_uri(path)}``, where
``path`` names the element: ``"00281201"`` at the top level, ``"00283010/0/00283006"`` inside item
0 of a sequence.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import Tag

log = logging.getLogger(__name__)

HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # PixelData, FloatPixelData, DoubleFloatPixelData
# Palette colour lookup table data (plain and segmented): always by BulkDataURI, as viewers expect.
PALETTE_TAGS = {0x00281201, 0x00281202, 0x00281203, 0x00281221, 0x00281222, 0x00281223}


def tag_hex(tag: int) -> str:
    return f"{int(tag):08X}"


def parse_tag(text: str) -> int | None:
    """A keyword (PatientName) or eight hex digits (00100010) as a tag number, or None."""
    text = text.strip()
    if len(text) == 8 and all(char in HEX_DIGITS for char in text):
        return int(text, 16)  # not int() alone: it also takes "-0000001", "0x001000" and "0010_010"
    tag = tag_for_keyword(text)
    return int(tag) if tag is not None else None


def keyword_of(tag: int) -> str:
    return keyword_for_tag(tag) or tag_hex(tag)


def vr_of(tag: int) -> str:
    try:
        vr = dictionary_VR(Tag(tag))
    except KeyError:
        return "UN"
    return vr.split(" or ")[0]


def _value(vr: str, value):
    if isinstance(value, dt.datetime):
        return value.strftime("%Y%m%d%H%M%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, dt.time):
        return value.strftime("%H%M%S")
    if vr == "PN":
        return {"Alphabetic": str(value)}
    if vr in ("IS", "US", "UL", "SS", "SL", "SV", "UV"):
        return int(value)
    if vr in ("DS", "FL", "FD"):
        number = float(value)
        return int(number) if vr == "DS" and number.is_integer() else number
    return value


def attribute(keyword_or_tag: str | int, value) -> tuple[str, dict]:
    """``("00100010", {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]})``; empty values have no Value."""
    tag = keyword_or_tag if isinstance(keyword_or_tag, int) else parse_tag(keyword_or_tag)
    vr = vr_of(tag)
    values = value if isinstance(value, (list, tuple)) else [value]
    values = [v for v in values if v is not None and v != ""]
    entry: dict = {"vr": vr}
    if values:
        entry["Value"] = [_value(vr, v) for v in values]
    return tag_hex(tag), entry


# Attributes OHIF v3 reads without checking that a Value is there. PS3.18 F.2 lets an empty attribute
# be sent as {"vr": ...} without Value, but OHIF throws on that for these, and an exception while
# parsing one study of a QIDO answer loses the whole study list; an absent attribute it handles. So
# QIDO answers leave these out when empty (everything else stays as it was, empty attributes included):
# ModalitiesInStudy (00080061) and Modality (00080060): platform/core/src/DICOMWeb/getModalities.js,
# called by processResults in extensions/default/src/DicomWebDataSource/qido.js for the study list,
# reads ModalitiesInStudy.Value.length (and, in older releases, Modality.Value.indexOf) unguarded.
# Every other attribute OHIF reads from QIDO goes through getString/getName/getNumber (DICOMWeb/*.js),
# which take {"vr": ...} as empty; WADO-RS metadata goes through dcmjs naturalizeDataset (no Value ->
# null) and MetadataProvider.ts, which tests with `if`/`== null` before use.
OHIF_NEEDS_VALUE = frozenset({"00080060", "00080061"})


def omit_empty_for_ohif(obj: dict) -> dict:
    """``obj`` (a top-level DICOM JSON object) without valueless entries OHIF cannot read (see above)."""
    return {key: entry for key, entry in obj.items() if "Value" in entry or key.upper() not in OHIF_NEEDS_VALUE}


def attributes(pairs: Iterable[tuple[str | int, object]]) -> dict:
    """A DICOM JSON object from (keyword or tag, value) pairs, keys in tag order."""
    out = dict(attribute(key, value) for key, value in pairs)
    return dict(sorted(out.items()))


def dataset_json(ds: Dataset, bulk_uri: Callable[[str], str], threshold: int = 1024, prefix: str = "") -> dict:
    """DICOM JSON of ``ds`` (file meta excluded); binary values past ``threshold`` bytes become BulkDataURIs."""
    out: dict = {}
    for element in ds:
        tag = int(element.tag)
        if element.tag.group == 0x0002:
            continue
        key = tag_hex(tag)
        path = f"{prefix}{key}"
        try:
            if element.VR == "SQ":
                items = [
                    dataset_json(item, bulk_uri, threshold, f"{path}/{index}/")
                    for index, item in enumerate(element.value)
                ]
                out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            elif tag in PIXEL_TAGS or (
                element.VR in BULK_VRS and (tag in PALETTE_TAGS or _length(element) > threshold)
            ):
                out[key] = {"vr": element.VR if element.VR in BULK_VRS else "OB", "BulkDataURI": bulk_uri(path)}
            else:
                out[key] = element.to_json_dict(None, 0)
        except Exception as exc:  # one malformed value never costs the whole data set
            log.debug("left out %s: %s", key, exc)
    return out


def _length(element) -> int:
    value = element.value
    if value is None:
        return 0
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return element.length or 0


def find_element(ds: Dataset, path: str):
    """The element at ``path`` ("00281201" or "00283010/0/00283006"), or None."""
    parts = [part for part in path.strip("/").split("/") if part]
    current = ds
    for position in range(0, len(parts), 2):
        tag = parse_tag(parts[position]) if len(parts[position]) == 8 else None
        if tag is None or tag not in current:
            return None
        element = current[tag]
        if position + 1 == len(parts):
            return element
        if element.VR != "SQ":
            return None
        try:
            index = int(parts[position + 1])
            current = element.value[index]
        except (ValueError, IndexError):
            return None
    return None
