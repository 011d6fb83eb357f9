"""Every file the app keeps, by name, in the configured storage (settings.STORAGES["default"]: a
folder under MEDIA_ROOT or an S3-compatible bucket). Names carry primary keys and hashes, never
patient data.

    uploads/<upload>/upload.zip                 the uploaded archive, until its ingest ends
    originals/<series>/<sha1 of SOP UID>.dcm    stored DICOM files, byte for byte
    derived/<series>/v<version>/volume.npy      decoded voxels of a volume (for images made on request)
    derived/<series>/v<version>/source.json     what it takes to render any image of the version
    derived/<series>/v<version>/<plane>/<i>.png plane images at the default window
    derived/<series>/v<version>/thumb.png
    derived/<series>/v<version>/segmentations/<seg series>-v<seg version>.npy
                                                labels of a SEG laid onto this version's volume
    derived/<series>/v<version>/complete        written once every image of the version exists

Everything under derived/ can be rebuilt from originals/. Images at other windows are not stored:
they are rendered on request and cached on the host that rendered them (studies.scratch).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.core.files.storage import storages

from studies import scratch
from studies.storage_backends import StorageUnavailable  # noqa: F401  (re-exported for callers)

PLANE_NAMES = ("axial", "coronal", "sagittal", "stack", "acquired")


def default():
    return storages["default"]


def is_local() -> bool:
    return default().kind == "local"


# --- names --------------------------------------------------------------------------------------


def upload_prefix(upload_id: int) -> str:
    return f"uploads/{upload_id}/"


def upload_name(upload_id: int) -> str:
    return upload_prefix(upload_id) + "upload.zip"


def original_name(series_id: int, sop_instance_uid: str) -> str:
    digest = hashlib.sha1(sop_instance_uid.encode()).hexdigest()[:24]
    return f"originals/{series_id}/{digest}.dcm"


def series_originals_prefix(series_id: int) -> str:
    return f"originals/{series_id}/"


def series_derived_prefix(series_id: int) -> str:
    return f"derived/{series_id}/"


def derived_prefix(series_id: int, version: int) -> str:
    return f"derived/{series_id}/v{version}/"


def volume_name(series_id: int, version: int) -> str:
    return derived_prefix(series_id, version) + "volume.npy"


def manifest_name(series_id: int, version: int) -> str:
    return derived_prefix(series_id, version) + "source.json"


def complete_name(series_id: int, version: int) -> str:
    return derived_prefix(series_id, version) + "complete"


def image_name(series_id: int, version: int, plane: str, index: int) -> str:
    return f"{derived_prefix(series_id, version)}{plane}/{index}.png"


def thumbnail_name(series_id: int, version: int) -> str:
    return derived_prefix(series_id, version) + "thumb.png"


def segmentation_labels_name(series_id: int, version: int, seg_series_id: int, seg_version: int) -> str:
    """A SEG series' labels on the volume of the series (version) it references (``Labels``)."""
    return f"{derived_prefix(series_id, version)}segmentations/{seg_series_id}-v{seg_version}.npy"


def window_image_name(series_id: int, version: int, plane: str, index: int, window=None, slab=None) -> str:
    """Where an image rendered on request (at another window, or before the workers made it, or
    a slab) is cached on the host that rendered it (scratch)."""
    folder = f"{_num(window.center)}_{_num(window.width)}" if window else "default"
    if slab is not None:
        folder += f"_{slab.key}"
    return f"windows/{series_id}/v{version}/{folder}/{plane}/{index}.png"


def _num(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text.replace("-", "m")


# --- operations -----------------------------------------------------------------------------------


def save_bytes(name: str, data: bytes) -> None:
    default().save_bytes(name, data)


def save_json(name: str, value) -> None:
    save_bytes(name, json.dumps(value, separators=(",", ":")).encode())


def read_json(name: str):
    with open_stream(name) as stream:
        return json.loads(stream.read())


def save_file(name: str, source: Path, *, move: bool = False) -> None:
    default().save_file(name, Path(source), move=move)


def open_stream(name: str):
    """A binary file-like object to read ``name`` from the start (FileNotFoundError if absent)."""
    return default().open_stream(name)


def exists(name: str) -> bool:
    return default().exists(name)


def size(name: str) -> int:
    return default().size(name)


def delete(name: str) -> None:
    default().delete(name)


def delete_prefix(prefix: str) -> None:
    default().delete_prefix(prefix)


def delete_many(names: list[str]) -> None:
    default().delete_many(names)


def iter_names(prefix: str):
    return default().iter_names(prefix)


def local_path(name: str) -> Path | None:
    """The stored file's own path when the storage is a local folder, else None."""
    return default().local_path(name)


def local_copy(name: str) -> Path:
    """A local file with the stored file's bytes: the file itself in a local folder, else a copy
    in this host's scratch cache (fetched on first use)."""
    path = local_path(name)
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(name)
        return path
    return scratch.cached(name, lambda target: default().fetch(name, target))


def check() -> None:
    """Raise StorageUnavailable (saying why) if the storage cannot be used."""
    default().check()


def remove_series_files(series_id: int) -> None:
    delete_prefix(series_originals_prefix(series_id))
    delete_prefix(series_derived_prefix(series_id))
    scratch.forget_series(series_id)


def remove_old_versions(series_id: int, keep_version: int) -> None:
    """Remove every derived version of a series but ``keep_version``."""
    keep = f"v{keep_version}"
    for version in default().subfolders(series_derived_prefix(series_id)):
        if not version.startswith("v") or version == keep:
            continue
        delete_prefix(f"{series_derived_prefix(series_id)}{version}/")
        scratch.forget(f"derived/{series_id}/{version}")
        scratch.forget(f"windows/{series_id}/{version}")
