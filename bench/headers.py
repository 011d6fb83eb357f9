"""Header reading, the element walker against pydicom.dcmread: `bench/headers.py [--rounds N]`.

Times ``read_header_prefix`` as the ingest calls it (first 8 KiB of each member, 64 KiB when that
answers NEED_MORE) over the 3000 64x64 MR members of the bench's small ZIP (30 series) and the 275
slices of the LIDC chest CT in ../shared/dicom, and ``read_header`` over those CT slices written
out as files; each with ``headers.FAST_WALK`` on (studies/imaging/walk.py) and off (dcmread), the
two alternating, N rounds (default 5). Prints JSON: ms per file, the median of the rounds.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data  # noqa: E402
from studies.imaging import headers  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
PREFIXES = (8 * 1024, 64 * 1024)  # studies/services/ingest.py HEADER_PREFIX_BYTES


def members(archive: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(archive) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist() if info.filename.endswith(".dcm")]


def prefix_ms(files: list[tuple[str, bytes]]) -> float:
    heads = [(name, [body[:size] for size in PREFIXES], len(body)) for name, body in files]
    where = Path("/nonexistent/member")
    start = time.perf_counter()
    for name, prefixes, size in heads:
        for head in prefixes:
            if headers.read_header_prefix(head, name, size, where) is not headers.NEED_MORE:
                break
    return (time.perf_counter() - start) / len(heads) * 1e3


def file_ms(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        headers.read_header(path)
    return (time.perf_counter() - start) / len(paths) * 1e3


def run(rounds: int = 5) -> dict:
    small = members(data.small_images_zip(OUT / "small3000x30.zip", 3000, series=30))
    ct = members(data.CT_SOURCE)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for number, (_, body) in enumerate(ct):
            paths.append(Path(folder) / f"{number:04d}.dcm")
            paths[-1].write_bytes(body)
        cases = {
            "small 64x64 MR, read_header_prefix": lambda: prefix_ms(small),
            "LIDC CT, read_header_prefix": lambda: prefix_ms(ct),
            "LIDC CT, read_header": lambda: file_ms(paths),
        }
        times: dict[str, dict[str, list[float]]] = {case: {"walker": [], "dcmread": []} for case in cases}
        for _ in range(rounds):
            for case, measure in cases.items():
                for way, fast in (("walker", True), ("dcmread", False)):
                    headers.FAST_WALK = fast
                    times[case][way].append(measure())
        headers.FAST_WALK = True
    return {
        case: {f"{way}_ms_per_file": round(statistics.median(values), 3) for way, values in ways.items()}
        for case, ways in times.items()
    }


if __name__ == "__main__":
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    print(json.dumps(run(rounds), indent=2))
