"""The shared PET + SEG case, cut down to the SEG and the PET slices around it (for test time)."""

from __future__ import annotations

import functools
import io
import zipfile

import pydicom

from tests.conftest import ingest_zip, make_zip, shared_path

PET_SEG_ZIP = ("pt-wholebody-qinheadneck-fnndsc", "QIN-HEADNECK-01-0024_PET_299slices_SEG.zip")
SEG_MEMBER = "QIN-HEADNECK-01-0024/SEG/tumor_User1_Manual_Trial1.dcm"


@functools.lru_cache(maxsize=2)
def _members(with_pet: bool) -> tuple[tuple[str, bytes], ...]:
    """The SEG and the PET slices it covers, read once per test process (reading the 299 PET
    headers took a few seconds on every call)."""
    members = {}
    with zipfile.ZipFile(shared_path(*PET_SEG_ZIP)) as zf:
        members[SEG_MEMBER] = zf.read(SEG_MEMBER)
        for name in zf.namelist() if with_pet else []:
            if "/PET/" in name and name.endswith(".dcm"):
                data = zf.read(name)
                ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
                if -445 <= float(ds.ImagePositionPatient[2]) <= -395:
                    members[name] = data
    return tuple(members.items())


def ingest_pet_seg(user, tmp_path, *, with_pet: bool = True):
    """Ingest the SEG and the 15 PET slices around it (z -445 to -395 mm) in this process (tasks
    must run eagerly): returns (pet series or None, seg series, the SEG's dataset)."""
    from studies.models import Series

    members = dict(_members(with_pet))
    seg_ds = pydicom.dcmread(io.BytesIO(members[SEG_MEMBER]))
    upload = ingest_zip(user, make_zip(tmp_path / "pet-seg.zip", members))
    upload.refresh_from_db()
    assert upload.status == "done", upload.error
    pet = Series.objects.filter(study__owner=user, modality="PT").first()
    seg = Series.objects.get(study__owner=user, modality="SEG")
    return pet, seg, seg_ds


def axial_index(plane: dict, z: float) -> int:
    """The axial image at patient height ``z`` (index 0 is the most superior)."""
    index = (plane["origin"][2] - z) / plane["step_mm"]
    assert abs(index - round(index)) < 1e-3
    return round(index)
