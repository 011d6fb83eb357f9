"""The floor: the fastest straightforward code for all plane PNGs of a CT series.

pydicom reads with threads, stacking into one array, a uint8 lookup-table window, and OpenCV
PNG encoding at compression 1 with the RLE strategy on two threads. Coronal and sagittal images
are resized to square pixels (as the app's are), so both produce the same images. No database,
no queue, no safety checks: what the app's pipeline is measured against.
"""

from __future__ import annotations

import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pydicom

PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def run(zip_path: Path, work: Path, threads: int = 2) -> dict:
    """Extract (not timed: the floor starts from files on disk), then time each stage."""
    work.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(work)
    files = sorted(p for p in work.rglob("*.dcm"))
    out = work / "png"
    out.mkdir(exist_ok=True)
    times = {}

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        datasets = list(pool.map(pydicom.dcmread, files))
    times["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]), reverse=True)  # superior first
    volume = np.stack(
        [ds.pixel_array.astype(np.int16) * int(ds.RescaleSlope) + int(ds.RescaleIntercept) for ds in datasets]
    )
    times["stack_s"] = time.perf_counter() - start

    start = time.perf_counter()
    center, width = -450.0, 2000.0
    # a table indexed by the int16 values' bit patterns: one gather per voxel, no wider copy
    values = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.float64)
    lut = np.clip(((values - (center - 0.5)) / (width - 1) + 0.5) * 255, 0, 255).astype(np.uint8)
    display = lut[volume.view(np.uint16)]
    times["window_s"] = time.perf_counter() - start

    spacing = float(datasets[0].PixelSpacing[0])
    thickness = abs(float(datasets[0].ImagePositionPatient[2]) - float(datasets[1].ImagePositionPatient[2]))
    height = int(round((len(datasets) - 1) * thickness / spacing)) + 1
    jobs = [("axial", k) for k in range(display.shape[0])]
    jobs += [("coronal", r) for r in range(display.shape[1])] + [("sagittal", c) for c in range(display.shape[2])]

    def encode(job):
        plane, index = job
        if plane == "axial":
            image = display[index]
        else:
            image = display[:, index, :] if plane == "coronal" else display[:, :, index]
            image = cv2.resize(image, (image.shape[1], height), interpolation=cv2.INTER_LINEAR)
        ok, data = cv2.imencode(".png", image, PNG)
        (out / f"{plane}-{index}.png").write_bytes(data.tobytes())

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(encode, jobs))
    times["encode_s"] = time.perf_counter() - start
    times["total_s"] = sum(times.values())
    times["images"] = len(jobs)
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in times.items()}
