"""Orthanc beside the app: Debian's ``Orthanc`` on 127.0.0.1, on the same data in the same run.

The server gets a generated configuration (one JSON file given on its command line, so nothing in
/etc/orthanc is read and no plugin is loaded), free HTTP and DICOM ports, and its storage, index
and temporary files in a folder of the bench's scratch. HTTP answers loopback only
(RemoteAccessAllowed false), with no authentication; the DICOM port knows no modality and
refuses every unknown AE, so nothing can reach it from outside either.

Measured, as a user of Orthanc would see it:

- ``ingest``: POST a ZIP to ``/instances`` (Orthanc stores it before it answers): instances/s.
  With ``fresh``, after ``Orthanc.clear()``: every instance must be stored anew ("Success", not
  "AlreadyStored"). bench/run.py runs it in turns with the app's ingest of the same ZIP.
- ``ct``: POST the CT's ZIP, then the middle slice's ``/instances/<id>/preview`` (store + first
  image), then every instance's preview with 2 concurrent clients (its axial stack: Orthanc has
  no MPR); times from the start of the POST.
- the previews again at 16 clients (``bench/run.py``'s ``load``: wrk when installed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import requests

from bench.moto_s3 import free_port


def skip_reason() -> str | None:
    """Why Orthanc cannot run here (None when it can)."""
    if shutil.which("Orthanc") is None:
        return "the Orthanc binary is not installed (apt-get install orthanc)"
    return None


def config(folder: Path, http_port: int, dicom_port: int) -> dict:
    """A self-contained configuration: every path under ``folder``, no plugins, loopback only."""
    return {
        "Name": "dicomviewer-bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "TemporaryDirectory": str(folder / "tmp"),
        "Plugins": [],
        "LuaScripts": [],
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "RegisteredUsers": {},
        "SslEnabled": False,
        "WebDavEnabled": False,
        "DicomServerEnabled": True,
        "DicomPort": dicom_port,
        "DicomAet": "DVBENCH",
        "DicomModalities": {},
        "OrthancPeers": {},
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowFindWorklist": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomAlwaysAllowStore": False,
        "SaveJobs": False,
        "ExecuteLuaEnabled": False,
        "RestApiWriteToFileSystemEnabled": False,
    }


class Orthanc:
    """One Orthanc process in ``folder`` (created), stopped by ``stop()`` or on leaving a ``with``."""

    def __init__(self, folder: Path, timeout: float = 30):
        reason = skip_reason()
        if reason:
            raise RuntimeError(reason)
        self.folder = folder
        for name in ("storage", "index", "tmp"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        self.http_port, self.dicom_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config_path = folder / "orthanc.json"
        self.config_path.write_text(json.dumps(config(folder, self.http_port, self.dicom_port), indent=2))
        self.log_path = folder / "orthanc.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [shutil.which("Orthanc"), str(self.config_path)],
            cwd=folder,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"{self.url}/system", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Orthanc did not start: {self.log_path.read_text(errors='replace')[-1500:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> Orthanc:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def store_zip(self, zip_path: Path, session: requests.Session | None = None, fresh: bool = False) -> list[dict]:
        """POST a ZIP to /instances; Orthanc answers once every instance in it is stored. With
        ``fresh`` an instance Orthanc already had ("AlreadyStored": not stored again) is an error."""
        with open(zip_path, "rb") as fp:
            reply = (session or requests).post(f"{self.url}/instances", data=fp, timeout=600)
        reply.raise_for_status()
        answer = reply.json()
        answer = answer if isinstance(answer, list) else [answer]
        accepted = ("Success",) if fresh else ("Success", "AlreadyStored")
        failed = [item for item in answer if item.get("Status") not in accepted]
        if failed:
            raise RuntimeError(f"Orthanc did not store {len(failed)} of {len(answer)} instances anew: {failed[0]}")
        return answer

    def clear(self) -> None:
        """Delete every patient (with their files), and check that no instance is left."""
        for patient in requests.get(f"{self.url}/patients", timeout=30).json():
            requests.delete(f"{self.url}/patients/{patient}", timeout=600).raise_for_status()
        left = requests.get(f"{self.url}/statistics", timeout=30).json()["CountInstances"]
        if left:
            raise RuntimeError(f"Orthanc still holds {left} instances after deleting every patient")


def instance_id(ds: pydicom.Dataset) -> str:
    """Orthanc's identifier of an instance: the SHA-1 of its patient ID and three UIDs joined by
    '|', in five groups of eight hex digits (the Orthanc Book, "Orthanc identifiers")."""
    key = "|".join(str(ds.get(k, "")) for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
    digest = hashlib.sha1(key.encode()).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


def middle_slice(zip_path: Path) -> pydicom.Dataset:
    """The header of the middle slice, by position along the slice normal, of the ZIP's largest series
    (the image the app shows first)."""
    headers = []
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            if name.endswith("/"):
                continue
            try:
                ds = pydicom.dcmread(io.BytesIO(zf.read(name)), stop_before_pixels=True)
            except pydicom.errors.InvalidDicomError:
                continue
            if "ImagePositionPatient" in ds:
                headers.append(ds)
    by_series: dict[str, list] = {}
    for ds in headers:
        by_series.setdefault(ds.SeriesInstanceUID, []).append(ds)
    series = max(by_series.values(), key=len)
    orientation = np.array(series[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    series.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))))
    return series[len(series) // 2]


def ingest(server: Orthanc, zip_path: Path, fresh: bool = False) -> dict:
    started = time.perf_counter()
    answer = server.store_zip(zip_path, fresh=fresh)
    seconds = time.perf_counter() - started
    return {"instances": len(answer), "stored_s": round(seconds, 3), "instances_per_s": round(len(answer) / seconds, 1)}


def preview(session: requests.Session, url: str, instance: str) -> None:
    reply = session.get(f"{url}/instances/{instance}/preview", timeout=120)
    reply.raise_for_status()
    if reply.content[:4] != b"\x89PNG":
        raise RuntimeError(f"Orthanc's preview of {instance} is not a PNG")


def ct(server: Orthanc, zip_path: Path, clients: int = 2) -> dict:
    """Store a CT, show its middle slice, then render every slice's preview (``clients`` at once)."""
    middle = instance_id(middle_slice(zip_path))  # untimed: the viewer's choice, known beforehand
    session = requests.Session()
    started = time.perf_counter()
    answer = server.store_zip(zip_path, session)
    stored_s = time.perf_counter() - started
    ids = [item["ID"] for item in answer]
    if middle not in ids:
        raise RuntimeError("the middle slice's Orthanc identifier is not in the store's answer")
    preview(session, server.url, middle)
    first_s = time.perf_counter() - started
    rest = [i for i in ids if i != middle]
    sessions = [requests.Session() for _ in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda k: preview(sessions[k % clients], server.url, rest[k]), range(len(rest))))
    all_s = time.perf_counter() - started
    return {
        "instances": len(ids),
        "stored_s": round(stored_s, 3),
        "first_image_s": round(first_s, 3),
        "all_images_s": round(all_s, 3),
        "images": len(ids),
        "preview_clients": clients,
        "instance_ids": ids,
    }


def preview_paths(instance_ids: list[str]) -> list[str]:
    return [f"/instances/{i}/preview" for i in instance_ids]


def run(folder: Path, inputs: dict[str, Path], load) -> dict:
    """The CT measurements on ``inputs`` ("ct500" and, when present, "lidc"; the small-image ingest
    runs in turns with the app's, in bench/run.py), with ``load(base_url, paths, seconds=...)``
    (bench/run.py's) for the 16 clients; a dict with "skipped" (and a printed "Orthanc skipped:
    <why>") where Orthanc cannot run."""
    reason = skip_reason()
    if reason is None:
        try:
            with Orthanc(folder) as server:
                results = {"version": requests.get(f"{server.url}/system", timeout=10).json()["Version"]}
                for name in ("ct500", "lidc"):
                    if name in inputs:
                        results[name] = ct(server, inputs[name])
                paths = preview_paths(results["ct500"]["instance_ids"])
                # the second pass: every preview was rendered once above (Orthanc keeps no copy)
                rounds = [load(server.url, paths, seconds=8) for _ in range(2)]
                results["serving"] = max(rounds, key=lambda r: r["requests_per_s"])
                for name in ("ct500", "lidc"):
                    results.get(name, {}).pop("instance_ids", None)
                return results
        except (RuntimeError, OSError, requests.RequestException) as error:
            reason = str(error)
        finally:
            shutil.rmtree(folder / "storage", ignore_errors=True)
    print(f"Orthanc skipped: {reason}", flush=True)
    return {"skipped": reason}
