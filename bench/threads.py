"""One thread or two for the ingest's per-file work, by image size: the figures behind
``studies/imaging/parallel.py``'s thresholds. `.venv/bin/python bench/threads.py [--rounds N]`.

For 64, 128, 256 and 512 px it builds a ZIP of 200 16-bit MONOCHROME2 images (a smooth image with
mild noise, so that deflate does what it does on real images; cached in bench/out/) and measures,
per file, on 1 thread and on 2 (``parallel.map_on``):

- extract: ``Archive.extract`` of every member to its own file, as the ingest does;
- decode+PNG+store: ``pixels.decode`` of each file's header, the file's window to uint8 (the files
  carry one, as scanners write it; without, the app windows each image from its values, which at
  512 x 512 costs more than the rest), ``encode_png``, and the PNG written as storage does (a
  temporary file, then ``os.replace``).

The rounds run interleaved (1 thread, 2 threads, then 2, 1, ...), each after ``os.sync()`` into a
fresh folder; the table shows the median of the rounds. No Django: the archive's limits are built here.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.data import mr_file  # noqa: E402
from studies.imaging import archive, parallel, pixels  # noqa: E402
from studies.imaging.headers import Header, read_header  # noqa: E402
from studies.imaging.render import Window, auto_window, encode_png, to_display  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
SIDES = (64, 128, 256, 512)
FILES = 200
# the ingest's defaults (settings.INGEST_MAX_*); none of them is reached here
LIMITS = archive.Limits(max_members=50_000, max_total_bytes=8 * 1024**3, max_member_bytes=2 * 1024**3, max_ratio=200)


def image(side: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth 12-bit image (a body with soft edges over a dark background, a brighter disc inside,
    moving a little from file to file) plus mild noise: deflated, the 512 x 512 files shrink to
    about 0.54 of their size (64 x 64: 0.62), the shared LIDC CT's to 0.53."""
    yy, xx = np.mgrid[:side, :side] / side
    r = np.hypot(yy - 0.5 - 0.001 * k, xx - 0.5)
    body = 1 / (1 + np.exp((r - 0.42) * 60))
    smooth = body * (400 + 600 * xx + 1200 / (1 + np.exp((r - 0.2) * 40)) + 200 * np.sin(6 * yy + k / 20))
    return (smooth + rng.normal(0, 6, (side, side)) * (0.3 + body)).clip(0, 4095).astype(np.uint16)


def make_zip(side: int, files: int = FILES) -> Path:
    """A ZIP of ``files`` side x side images in one series (deflated, level 6); cached by name."""
    target = OUT / f"threads{side}x{files}.zip"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(side)
    study, series = generate_uid(), generate_uid()
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for k in range(files):
            data = mr_file(image(side, k, rng), study, series, 1, k + 1, "THREADS", window=(900, 1800))
            zf.writestr(f"THREADS/{k:05d}.dcm", data)
    tmp.replace(target)
    return target


def extract_all(source: archive.Archive, folder: Path, threads: int) -> int:
    folder.mkdir(parents=True)
    members = source.members
    return len(list(parallel.map_on(threads, lambda m: source.extract(m, folder / f"{m.number:06d}"), members)))


def render_all(headers: list[Header], folder: Path, threads: int) -> int:
    folder.mkdir(parents=True)

    def work(header: Header) -> None:
        values = pixels.decode(header)[0]
        center, width = header.window
        window = Window(center, width) if center is not None and width else auto_window(values)
        png = encode_png(to_display(values, window))
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(png)
        os.replace(temporary, folder / f"{header.instance_number or 0:06d}.png")

    return len(list(parallel.map_on(threads, work, headers)))


def timed_ms(run, count_expected: int) -> float:
    """ms per file of ``run()``, after the disk has written what earlier rounds left."""
    os.sync()
    started = time.perf_counter()
    count = run()
    seconds = time.perf_counter() - started
    assert count == count_expected
    return seconds / count * 1e3


def measure(side: int, rounds: int, scratch: Path) -> dict:
    zip_path = make_zip(side)
    times: dict[tuple[str, int], list[float]] = {}
    with archive.Archive(zip_path, LIMITS) as source:
        files = len(source.members)
        base = scratch / "files"
        extract_all(source, base, 1)  # untimed: the files the decoding reads
        headers = [read_header(base / f"{m.number:06d}", m.name) for m in source.members]
        assert all(isinstance(h, Header) for h in headers)
        file_bytes = statistics.mean(h.file_size for h in headers)
        for k in range(rounds):
            for threads in (1, 2) if k % 2 == 0 else (2, 1):
                folder = scratch / f"extract-{k}-{threads}"
                times.setdefault(("extract", threads), []).append(
                    timed_ms(lambda f=folder, t=threads: extract_all(source, f, t), files)
                )
                shutil.rmtree(folder)
                folder = scratch / f"render-{k}-{threads}"
                times.setdefault(("render", threads), []).append(
                    timed_ms(lambda f=folder, t=threads: render_all(headers, f, t), files)
                )
                shutil.rmtree(folder)
        shutil.rmtree(base)
    medians = {f"{what}_{threads}_ms": round(statistics.median(v), 2) for (what, threads), v in times.items()}
    return {"side": side, "files": files, "file_kb": round(file_bytes / 1024), **dict(sorted(medians.items()))}


def table(rows: list[dict]) -> str:
    lines = [f"{'per file, 1 vs 2 threads':24}  {'extract, ms':>15}   {'decode+PNG+store, ms':>20}"]
    for r in rows:
        label = f"{r['side']} x {r['side']} ({r['file_kb']} KB)"
        extract = f"{r['extract_1_ms']:.2f} vs {r['extract_2_ms']:.2f}"
        render = f"{r['render_1_ms']:.2f} vs {r['render_2_ms']:.2f}"
        lines.append(f"{label:24}  {extract:>15}   {render:>20}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 5
    scratch = OUT / "scratch-threads"
    shutil.rmtree(scratch, ignore_errors=True)
    rows = []
    try:
        for side in SIDES:
            scratch.mkdir(parents=True)
            rows.append(measure(side, rounds, scratch))
            shutil.rmtree(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{FILES} files per size, median of {rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f}")
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
