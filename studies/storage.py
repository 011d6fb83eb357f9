"""Where files live under MEDIA_ROOT. Paths carry primary keys and hashes, never patient data.

    uploads/<upload>/upload.zip                 the uploaded archive, until its ingest ends
    work/<upload>/                              extraction folder of a running ingest
    originals/<series>/<sha1 of SOP UID>.dcm    stored DICOM files, byte for byte
    derived/<series>/v<version>/volume.npy      decoded voxels of a volume (memory-mapped)
    derived/<series>/v<version>/<plane>/<i>.png plane images at the default window
    derived/<series>/v<version>/thumb.png
    derived/<series>/v<version>/w/<c>_<w>/<plane>/<i>.png  images at other windows (cache)

Everything under derived/ can be rebuilt from originals/.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def absolute(relative: str | os.PathLike) -> Path:
    return media_root() / relative


def upload_dir(upload_id: int) -> Path:
    return media_root() / "uploads" / str(upload_id)


def work_dir(upload_id: int) -> Path:
    return media_root() / "work" / str(upload_id)


def tmp_dir() -> Path:
    path = media_root() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def original_relpath(series_id: int, sop_instance_uid: str) -> str:
    digest = hashlib.sha1(sop_instance_uid.encode()).hexdigest()[:24]
    return f"originals/{series_id}/{digest}.dcm"


def series_originals_dir(series_id: int) -> Path:
    return media_root() / "originals" / str(series_id)


def derived_dir(series_id: int, version: int) -> Path:
    return media_root() / "derived" / str(series_id) / f"v{version}"


def series_derived_root(series_id: int) -> Path:
    return media_root() / "derived" / str(series_id)


def volume_path(series_id: int, version: int) -> Path:
    return derived_dir(series_id, version) / "volume.npy"


def image_path(series_id: int, version: int, plane: str, index: int, window: tuple[float, float] | None = None) -> Path:
    base = derived_dir(series_id, version)
    if window is not None:
        base = base / "w" / f"{_num(window[0])}_{_num(window[1])}"
    return base / plane / f"{index}.png"


def thumbnail_path(series_id: int, version: int) -> Path:
    return derived_dir(series_id, version) / "thumb.png"


def _num(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text.replace("-", "m")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_old_versions(series_id: int, keep_version: int) -> None:
    root = series_derived_root(series_id)
    if not root.is_dir():
        return
    for child in root.iterdir():
        if child.name.startswith("v") and child.name != f"v{keep_version}":
            remove_tree(child)
