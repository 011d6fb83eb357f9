"""SUVbw of a PET series: the factor that turns its stored values (Bq/ml) into body-weight
standardised uptake values, or the reason it cannot be had. Plain Python, no Django.

    SUVbw = stored value (Bq/ml) x weight (g) / decayed dose (Bq)

as PS3.3 (C.8.9.1, C.8.22 Radiopharmaceutical Information) defines the inputs and the QIBA FDG-PET
profile's vendor-neutral SUV computation combines them:

- the images must be attenuation- and decay-corrected (CorrectedImage holds ATTN and DECY) and
  decay-corrected to the scan start (DecayCorrection START; ADMIN, corrected to the injection,
  needs no decay of the dose); Units BQML (GML is SUVbw already, factor 1; CNTS and the others
  are refused);
- PatientWeight (kg), RadionuclideTotalDose (Bq), RadionuclideHalfLife (s) and the injection
  time, RadiopharmaceuticalStartDateTime or else RadiopharmaceuticalStartTime (on the scan's day;
  the day before when that would put it after the scan and the day before is at most 12 hours
  earlier: the injection spans midnight);
- the scan time the values are decay-corrected to: SeriesDate/SeriesTime, unless the series is
  stamped after its earliest AcquisitionDate/AcquisitionTime (a post-processed series, re-made
  later): then GE's private scan date and time (0009,100D of GEMS_PETD_01) when present, else
  the earliest acquisition time of the series.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

SUV_UNIT = "SUVbw"
GE_PRIVATE_CREATOR = "GEMS_PETD_01"
NO_DATE = dt.date(2000, 1, 1)  # the day of times that come without one (only differences count)
MIDNIGHT_SPAN_MAX = dt.timedelta(hours=12)  # an injection time later than the scan's is the day before, within this


@dataclass(frozen=True)
class PetInfo:
    """What one PET instance says about its values (read by ``read_pet_info``)."""

    units: str = ""
    decay_correction: str = ""
    corrected_image: tuple[str, ...] = ()
    weight_kg: float | None = None
    dose_bq: float | None = None
    half_life_s: float | None = None
    start: dt.datetime | None = None  # RadiopharmaceuticalStartDateTime
    start_time: dt.time | None = None  # RadiopharmaceuticalStartTime
    series_date: dt.date | None = None
    series_time: dt.time | None = None
    acquisition_date: dt.date | None = None
    acquisition_time: dt.time | None = None
    ge_scan: dt.datetime | None = None  # (0009,100D) GEMS_PETD_01

    @property
    def series_datetime(self) -> dt.datetime | None:
        return _combine(self.series_date, self.series_time)

    @property
    def acquisition_datetime(self) -> dt.datetime | None:
        return _combine(self.acquisition_date or self.series_date, self.acquisition_time)


@dataclass(frozen=True)
class Suv:
    factor: float | None  # SUVbw = stored value x factor
    problem: str | None  # why there is no factor, in plain words
    unit: str  # the unit of the stored values (SUVbw when they are SUV already)


def suv_factor(infos: list[PetInfo]) -> Suv:
    """The SUVbw factor of a series from its instances' PET information (the first one's dose,
    weight and times; the earliest acquisition time of all)."""
    if not infos:
        return Suv(None, "No SUV: no PET header information.", "")
    first = infos[0]
    units = first.units.upper()
    if units == "GML":
        return Suv(1.0, None, SUV_UNIT)
    if units != "BQML":
        if units == "CNTS":
            why = "the values are counts (Units CNTS), not an activity concentration"
        else:
            why = f"the values are in {units or 'no stated unit'} (Units), not Bq/ml (BQML)"
        return Suv(None, f"No SUV: {why}.", units)
    problem = _refusal(first)
    if problem:
        return Suv(None, f"No SUV: {problem}.", units)
    dose = first.dose_bq
    if first.decay_correction.upper() == "START":
        scan = scan_datetime(infos)
        if scan is None:
            return Suv(None, "No SUV: the header has no series or acquisition time to decay the dose to.", units)
        start = injection_datetime(first, scan)
        delay_s = (scan - start).total_seconds()
        if delay_s < 0:
            return Suv(None, "No SUV: the injection time is after the scan time.", units)
        dose = dose * 2.0 ** (-delay_s / first.half_life_s)
    factor = first.weight_kg * 1000.0 / dose
    if not math.isfinite(factor) or factor <= 0:
        return Suv(None, "No SUV: the weight and dose give no usable factor.", units)
    return Suv(factor, None, units)


def _refusal(info: PetInfo) -> str | None:
    corrected = {value.upper() for value in info.corrected_image}
    missing = [name for name in ("ATTN", "DECY") if name not in corrected]
    if missing:
        what = {"ATTN": "attenuation", "DECY": "decay"}
        return "the images are not " + " and ".join(what[m] for m in missing) + "-corrected (CorrectedImage)"
    if info.decay_correction.upper() not in ("START", "ADMIN"):
        when = info.decay_correction or "no stated time"
        return f"the images are decay-corrected to {when} (DecayCorrection), not to the scan start"
    if not info.weight_kg or info.weight_kg <= 0:
        return "the header has no patient weight (PatientWeight)"
    if not info.dose_bq or info.dose_bq <= 0:
        return "the header has no injected dose (RadionuclideTotalDose)"
    if info.decay_correction.upper() == "START":
        if not info.half_life_s or info.half_life_s <= 0:
            return "the header has no half-life (RadionuclideHalfLife)"
        if info.start is None and info.start_time is None:
            return "the header has no injection time (RadiopharmaceuticalStartTime)"
    return None


def scan_datetime(infos: list[PetInfo]) -> dt.datetime | None:
    """The time the values are decay-corrected to (QIBA): the series time unless the series is
    later than its earliest acquisition; then GE's private scan time, else that acquisition."""
    series = infos[0].series_datetime
    acquisitions = [a for a in (info.acquisition_datetime for info in infos) if a is not None]
    earliest = min(acquisitions) if acquisitions else None
    if series is not None and (earliest is None or series <= earliest):
        return series
    if infos[0].ge_scan is not None:
        return infos[0].ge_scan
    return earliest


def injection_datetime(info: PetInfo, scan: dt.datetime) -> dt.datetime:
    if info.start is not None:
        return info.start
    start = dt.datetime.combine(scan.date(), info.start_time)
    if start > scan and start - dt.timedelta(days=1) >= scan - MIDNIGHT_SPAN_MAX:
        start -= dt.timedelta(days=1)  # an injection before midnight, a scan after it
    return start


def _combine(date: dt.date | None, time: dt.time | None) -> dt.datetime | None:
    return dt.datetime.combine(date or NO_DATE, time) if time is not None else None


# --- reading the header ---------------------------------------------------------------------


def read_pet_info(ds) -> PetInfo:
    """The PET information of a pydicom Dataset (values that are missing or unreadable are None)."""
    item = None
    try:
        sequence = ds.get("RadiopharmaceuticalInformationSequence")
        item = sequence[0] if sequence else None
    except Exception:
        item = None
    return PetInfo(
        units=_text(ds, "Units").upper(),
        decay_correction=_text(ds, "DecayCorrection").upper(),
        corrected_image=tuple(_texts(ds, "CorrectedImage")),
        weight_kg=_number(ds, "PatientWeight"),
        dose_bq=_number(item, "RadionuclideTotalDose"),
        half_life_s=_number(item, "RadionuclideHalfLife"),
        start=parse_datetime(_text(item, "RadiopharmaceuticalStartDateTime")),
        start_time=parse_time(_text(item, "RadiopharmaceuticalStartTime")),
        series_date=parse_date(_text(ds, "SeriesDate")),
        series_time=parse_time(_text(ds, "SeriesTime")),
        acquisition_date=parse_date(_text(ds, "AcquisitionDate")),
        acquisition_time=parse_time(_text(ds, "AcquisitionTime")),
        ge_scan=_ge_scan(ds),
    )


def _ge_scan(ds) -> dt.datetime | None:
    try:
        value = ds.get_private_item(0x0009, 0x0D, GE_PRIVATE_CREATOR).value
    except Exception:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return parse_datetime(str(value))


def _raw(ds, keyword: str):
    if ds is None:
        return None
    try:
        return ds.get(keyword)
    except Exception:
        return None


def _texts(ds, keyword: str) -> list[str]:
    value = _raw(ds, keyword)
    if value is None:
        return []
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return [str(value).strip()] if str(value).strip() else []
    return [str(v).strip() for v in value if str(v).strip()]


def _text(ds, keyword: str) -> str:
    values = _texts(ds, keyword)
    return values[0] if values else ""


def _number(ds, keyword: str) -> float | None:
    try:
        number = float(_text(ds, keyword))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_date(text: str) -> dt.date | None:
    digits = text.strip().replace(".", "").replace("-", "")[:8]
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])) if len(digits) == 8 else None
    except ValueError:
        return None


def parse_time(text: str) -> dt.time | None:
    """A DICOM TM (HH[MM[SS[.FFFFFF]]], old-style colons allowed), with its fraction of a second."""
    text = text.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if len(whole) < 2 or len(whole) % 2 or not whole.isdigit():
        return None
    try:
        hour, minute, second = int(whole[0:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
        micro = int((fraction[:6] or "0").ljust(6, "0")) if fraction.isdigit() or not fraction else 0
        return dt.time(hour, minute, min(second, 59), micro)
    except ValueError:
        return None


def parse_datetime(text: str) -> dt.datetime | None:
    """A DICOM DT (YYYYMMDD[HHMMSS[.FFFFFF]][&ZZXX]); the offset from UTC is left out (both
    times of a difference come from the same scanner)."""
    text = text.strip()
    for sign in "+-":
        if sign in text[8:]:
            text = text[: 8 + text[8:].index(sign)]
    date = parse_date(text[:8])
    if date is None:
        return None
    time = parse_time(text[8:]) if len(text) > 8 else dt.time(0)
    return dt.datetime.combine(date, time) if time is not None else None


# --- a series' values ---------------------------------------------------------------------------

CT_UNIT = "HU"
REBUILD_NEEDED = "No SUV: this series was prepared before SUV was known here; re-run its upload to compute it."


def series_values(modality: str, pet: list[PetInfo]) -> dict:
    """``{"unit", "suv_factor", "suv_problem"}`` of a series: its stored values' unit (HU for CT,
    the PET Units, else "" for values without one), and for PET the SUVbw factor or why not."""
    if modality == "CT":
        return {"unit": CT_UNIT, "suv_factor": None, "suv_problem": None}
    if modality != "PT":
        return {"unit": "", "suv_factor": None, "suv_problem": None}
    suv = suv_factor(pet)
    if suv.factor is not None:
        return {"unit": SUV_UNIT, "suv_factor": suv.factor, "suv_problem": None}
    return {"unit": suv.unit, "suv_factor": None, "suv_problem": suv.problem}


def fallback_values(modality: str) -> dict:
    """For a series built before its values were recorded: the unit by modality, and for PET no
    SUV until it is built again."""
    if modality == "PT":
        return {"unit": "", "suv_factor": None, "suv_problem": REBUILD_NEEDED}
    return series_values(modality, [])
