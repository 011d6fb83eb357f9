"""The app beside Orthanc and the floor, from one run's figures: rows, ratios and targets (PASS/MISS).

``ours`` holds bench/run.py's ``ingest_run`` results ("small": a list of runs; "ct500", optionally
"lidc") and a ``load`` result ("serving", the viewer's signed image URLs at 16 clients); ``theirs`` is
bench/orthanc.py's ``run`` (or ``{"skipped": why}``) with, under "small", its ingests of the small
ZIP, run in turns with the app's (run k of each side is pair k); ``floor`` is bench/floor.py's on the
500-slice CT. The small-image ratio is of the medians of the two sides' instances/s; each pair's
ratio is shown too, to see how much the disk moved during the run.
Times beside Orthanc's start with the POST on both sides (Orthanc answers its POST once stored);
ratios to the floor use the app's times from the upload's answer, as the floor starts from files
on disk.
"""

from __future__ import annotations

import operator
import statistics

TESTS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt}
CTS = (("ct500", "500-slice CT"), ("lidc", "275-slice LIDC CT"))


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def compare(ours: dict, theirs: dict, floor: dict) -> dict:
    """{"rows": [[what, ours, Orthanc, ratio]], "targets": [{what, ratio, target, result}]}."""
    rows, targets = [], []
    orthanc = {} if "skipped" in theirs else theirs

    def row(what, mine, peer):
        rows.append([what, mine, peer, _ratio(mine, peer)])

    def target(what, ratio, test, limit):
        result = "n/a" if ratio is None else ("PASS" if TESTS[test](ratio, limit) else "MISS")
        targets.append({"what": what, "ratio": ratio, "target": f"{test} {limit}x", "result": result})

    runs = ours["small"] if isinstance(ours["small"], list) else [ours["small"]]
    mine = [round(r["instances"] / r["all_images_from_post_s"], 1) for r in runs]
    peers = [r["instances_per_s"] for r in orthanc.get("small", [])]
    small_ips, peer_ips = _median(mine), _median(peers)
    turns = f", median of {len(mine)} in turns" if len(mine) > 1 else ""
    row(f"{runs[0]['instances']} small images: stored + every plane listed, instances/s{turns}", small_ips, peer_ips)
    if len(mine) > 1:
        for pair, value in enumerate(mine):
            row(f"  pair {pair + 1} (ours, then Orthanc)", value, peers[pair] if pair < len(peers) else None)
    target("small-image ingest, instances/s, to Orthanc's", _ratio(small_ips, peer_ips), ">=", 1.0)
    for name, label in CTS:
        if name not in ours:
            continue
        mine, peer = ours[name], orthanc.get(name, {})
        first = mine["first_image_from_post_s"]
        row(f"{label}: first image (Orthanc: store + first preview), s", first, peer.get("first_image_s"))
        images = f"ours {mine['images']} in 3 planes, Orthanc {peer.get('images', '-')} previews"
        row(f"{label}: all images ({images}), s", mine["all_images_from_post_s"], peer.get("all_images_s"))
        ratio = _ratio(mine["first_image_from_post_s"], peer.get("first_image_s"))
        target(f"{label}: first image to Orthanc's store + first preview", ratio, "<=", 0.5)
    ct500 = ours["ct500"]
    floor_s = floor["total_s"]
    target("500-slice CT: first image to the floor's all planes", _ratio(ct500["first_image_s"], floor_s), "<=", 0.1)
    target("500-slice CT: all planes to the floor's", _ratio(ct500["all_images_s"], floor_s), "<=", 1.0)
    mine, peer = ours["serving"], orthanc.get("serving", {})
    row("rendered images, 16 clients: p50, ms", mine.get("p50_ms"), peer.get("p50_ms"))
    row("rendered images, 16 clients: p99, ms", mine.get("p99_ms"), peer.get("p99_ms"))
    row("rendered images, 16 clients: requests/s", mine.get("requests_per_s"), peer.get("requests_per_s"))
    target("serving p99 to Orthanc's", _ratio(mine.get("p99_ms"), peer.get("p99_ms")), "<", 1.0)
    return {"orthanc": theirs.get("version") or f"skipped: {theirs.get('skipped')}", "rows": rows, "targets": targets}


def table(comparison: dict) -> str:
    """The comparison as text, for the terminal."""

    def cell(value, unit=""):
        return "-" if value is None else f"{value}{unit}"

    width = max(len(r[0]) for r in comparison["rows"])
    lines = [f"{'':{width}}  {'ours':>9}  {'Orthanc':>9}  {'ratio':>6}   (Orthanc {comparison['orthanc']})"]
    for what, mine, peer, ratio in comparison["rows"]:
        lines.append(f"{what:{width}}  {cell(mine):>9}  {cell(peer):>9}  {cell(ratio, 'x'):>6}")
    lines.append("")
    for t in comparison["targets"]:
        lines.append(f"{t['what']:{width}}  {cell(t['ratio'], 'x'):>9}  {t['target']:>9}  {t['result']}")
    return "\n".join(lines)
