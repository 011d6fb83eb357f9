"""Header reading, the element walker against pydicom.dcmread: `bench/headers.py [--rounds N]`;
and the ingest's header scan on one process against two: `bench/headers.py --scan [--rounds N] [--ballast-mb M]`.

Times ``read_header_prefix`` as the ingest calls it (first 8 KiB of each member, 64 KiB when that
answers NEED_MORE) over the 3000 64x64 MR members of the bench's small ZIP (30 series) and the 275
slices of the LIDC chest CT in ../shared/dicom, and ``read_header`` over those CT slices written
out as files; each with ``headers.FAST_WALK`` on (studies/imaging/walk.py) and off (dcmread), the
two alternating, N rounds (default 5). Prints JSON: ms per file, the median of the rounds.

``--scan`` times the ingest's first stage in this process: the first n members of the small ZIP read
through ``archive.Archive`` (prefix, header, a long header extracted whole), by the plain loop and by
``forked.map_forked`` on two processes (this one and a forked helper reading a reopened archive),
alternating, for several n; ``--ballast-mb`` first fills that much memory, as a worker's heap
would be (a fork copies the page tables). Prints JSON: ms, the median of the rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data  # noqa: E402
from studies.imaging import archive, forked, headers  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
PREFIXES = (8 * 1024, 64 * 1024)  # studies/services/ingest.py HEADER_PREFIX_BYTES
SCAN_COUNTS = (50, 100, 200, 400, 1000, 3000)


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


def member_header(source: archive.Archive, member: archive.Member, work: Path):
    """studies/services/ingest.py _member_header without its settings."""
    try:
        for size in PREFIXES:
            head = source.prefix(member, size)
            header = headers.read_header_prefix(head, member.name, member.info.file_size, work / "member")
            if header is not headers.NEED_MORE or len(head) >= member.info.file_size:
                break
        if header is headers.NEED_MORE:
            path = work / f"{member.number:06d}"
            source.extract(member, path)
            header = headers.read_header(path, member.name)
            path.unlink()
    except archive.MemberError as exc:
        return archive.Skipped(member.name, str(exc))
    return header


def scan_ms(source: archive.Archive, members: list, work: Path, processes: int) -> float:
    start = time.perf_counter()
    forked.map_forked(
        lambda member: member_header(source, member, work),
        members,
        processes,
        in_helper=lambda: (lambda own: lambda member: member_header(own, member, work))(source.reopened()),
        min_items=0,
    )
    return (time.perf_counter() - start) * 1e3


def scan(rounds: int = 5, ballast_mb: int = 0) -> dict:
    ballast = bytearray(os.urandom(1024 * 1024)) * ballast_mb  # written pages, as a worker's heap
    times: dict[int, dict[int, list[float]]] = {count: {1: [], 2: []} for count in SCAN_COUNTS}
    with tempfile.TemporaryDirectory() as folder:
        with archive.Archive(data.small_images_zip(OUT / "small3000x30.zip", 3000, series=30)) as source:
            for _ in range(rounds):
                for count in SCAN_COUNTS:
                    for processes in (1, 2):
                        times[count][processes].append(scan_ms(source, source.members[:count], Path(folder), processes))
    del ballast
    return {
        f"{count} members": {
            "one process ms": round(statistics.median(by[1]), 1),
            "two processes ms": round(statistics.median(by[2]), 1),
        }
        for count, by in times.items()
    } | {"ballast MB": ballast_mb, "load average": round(os.getloadavg()[0], 2)}


if __name__ == "__main__":
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    if "--scan" in sys.argv:
        ballast_mb = int(sys.argv[sys.argv.index("--ballast-mb") + 1]) if "--ballast-mb" in sys.argv else 0
        print(json.dumps(scan(rounds, ballast_mb), indent=2))
    else:
        print(json.dumps(run(rounds), indent=2))
