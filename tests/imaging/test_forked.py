"""A map over this process and a forked helper (studies.imaging.forked): the plain loop's results,
whatever the helper does."""

from __future__ import annotations

import os
import pickle
import signal
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from studies.imaging import archive, forked
from studies.imaging.headers import Header, read_header_prefix
from tests.dicomgen import write_image

ITEMS = range(300)
HERE = os.getpid()


def slow_square(item: int) -> tuple[int, int]:
    """The item's square and the process that made it; 1 ms, so that both processes get some."""
    time.sleep(0.001)
    return item * item, os.getpid()


def squares(results) -> list[int]:
    return [square for square, _pid in results]


def helper_pid(results) -> set[int]:
    return {pid for _square, pid in results} - {os.getpid()}


def helper_that(tmp_path: Path, misbehave, after: int):
    """``in_helper`` for a helper that notes its pid, works like slow_square for ``after`` items, then
    calls ``misbehave()``."""

    def in_helper():
        (tmp_path / "helper.pid").write_text(str(os.getpid()))
        count = 0

        def work(item):
            nonlocal count
            count += 1
            if count > after:
                misbehave()
            return slow_square(item)

        return work

    return in_helper


def assert_gone(tmp_path: Path) -> None:
    """The helper noted its pid and is no more: killed and reaped (a zombie still answers kill 0)."""
    pid = int((tmp_path / "helper.pid").read_text())
    assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_results_are_the_plain_loops_in_order_with_both_processes_working():
    results = forked.map_forked(slow_square, ITEMS, 2)

    assert squares(results) == [item * item for item in ITEMS]
    assert len(helper_pid(results)) == 1, "the helper did part of the work"


def test_progress_counts_every_item_once_and_ends_at_the_total():
    counts = []

    forked.map_forked(slow_square, ITEMS, 2, on_progress=counts.append)

    assert counts == sorted(counts) and counts[-1] == len(ITEMS)
    assert len(counts) < 2 * len(ITEMS), "the helper's chunks are counted as they arrive, not item by item"


@pytest.mark.parametrize("count, processes", [(forked.FORK_MIN_ITEMS - 1, 2), (forked.FORK_MIN_ITEMS * 2, 1)])
def test_few_items_or_one_process_stay_in_this_process(count, processes):
    pids = forked.map_forked(lambda _item: os.getpid(), range(count), processes)

    assert pids == [os.getpid()] * count


def test_a_helper_that_raises_leaves_the_rest_to_this_process(tmp_path, caplog):
    def fail():
        raise ValueError("bad item")

    results = forked.map_forked(slow_square, ITEMS, 2, in_helper=helper_that(tmp_path, fail, after=0))

    assert squares(results) == [item * item for item in ITEMS]
    assert not helper_pid(results)
    assert "raised ValueError: bad item" in caplog.text
    assert_gone(tmp_path)


def test_a_helper_killed_mid_way_leaves_the_rest_to_this_process(tmp_path, caplog):
    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    # it sends its first chunk, then dies in its second
    in_helper = helper_that(tmp_path, die, after=forked.CHUNK_ITEMS + 3)
    results = forked.map_forked(slow_square, ITEMS, 2, in_helper=in_helper)

    assert squares(results) == [item * item for item in ITEMS]
    assert len(helper_pid(results)) == 1, "what the helper sent before it died is kept"
    assert "killed by signal 9" in caplog.text
    assert_gone(tmp_path)


def test_a_helper_that_hangs_is_killed_and_its_part_done_here(tmp_path, caplog):
    start = time.monotonic()
    in_helper = helper_that(tmp_path, lambda: time.sleep(3600), after=2)
    results = forked.map_forked(slow_square, ITEMS, 2, in_helper=in_helper, stall_seconds=0.5)

    assert squares(results) == [item * item for item in ITEMS]
    assert time.monotonic() - start < 10
    assert "silent for" in caplog.text
    assert_gone(tmp_path)


class Stop(Exception):
    pass


@pytest.mark.parametrize("where", ["work", "progress"])
def test_an_exception_here_kills_and_reaps_the_helper(tmp_path, where):
    """As Celery's SoftTimeLimitExceeded would, raised from the work or from the progress report."""

    def work(item):
        if where == "work" and item == 100:
            raise Stop
        return slow_square(item)

    def progress(done):
        if where == "progress" and done >= 100:
            raise Stop

    in_helper = helper_that(tmp_path, lambda: time.sleep(3600), after=2)  # it would never end by itself
    with pytest.raises(Stop):
        forked.map_forked(work, ITEMS, 2, in_helper=in_helper, on_progress=progress)

    assert_gone(tmp_path)


def test_a_signal_handler_raising_here_kills_and_reaps_the_helper(tmp_path):
    """As Celery's soft time limit does (a signal whose handler raises), here while this process waits
    for a silent helper."""

    def time_is_up(signum, frame):
        raise Stop

    previous = signal.signal(signal.SIGALRM, time_is_up)
    in_helper = helper_that(tmp_path, lambda: time.sleep(3600), after=2)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.6)  # this process's part takes about 0.3 s
        with pytest.raises(Stop):
            forked.map_forked(slow_square, ITEMS, 2, in_helper=in_helper, stall_seconds=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert_gone(tmp_path)


def test_headers_and_skips_travel_by_pickle_unchanged(tmp_path):
    path = write_image(tmp_path / "one.dcm", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    data = path.read_bytes()
    header = read_header_prefix(data, "one.dcm", len(data), tmp_path / "000001")
    skipped = archive.Skipped("notes.txt", "not a DICOM file")

    assert isinstance(header, Header) and header.frames
    assert pickle.loads(pickle.dumps(header, pickle.HIGHEST_PROTOCOL)) == header
    assert pickle.loads(pickle.dumps(skipped, pickle.HIGHEST_PROTOCOL)) == skipped


def test_a_helper_reading_a_reopened_archive_answers_what_this_process_would(tmp_path):
    """Headers of a ZIP's members, read as the ingest does, with DICOM, non-DICOM and a corrupt member."""
    zip_path = tmp_path / "scan.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for number in range(forked.FORK_MIN_ITEMS + 40):
            pixels = np.full((16, 16), number, np.uint16)
            if number % 25 == 7:
                zf.writestr(f"notes/{number}.txt", f"note {number}")
            else:
                zf.writestr(f"images/{number}.dcm", write_image(tmp_path / "one.dcm", pixels).read_bytes())
    corrupt_at = zipfile.ZipFile(zip_path).getinfo("images/100.dcm").header_offset + 30 + len("images/100.dcm")
    data = bytearray(zip_path.read_bytes())
    data[corrupt_at + 40 : corrupt_at + 48] = b"\xff" * 8
    zip_path.write_bytes(bytes(data))

    def header_in(source, note: Path | None = None):
        def read(member):
            if note is not None:
                with open(note, "a") as fp:
                    fp.write(f"{member.number}\n")
            try:
                head = source.prefix(member, 8192)
            except archive.MemberError as exc:
                return archive.Skipped(member.name, str(exc))
            return read_header_prefix(head, member.name, member.info.file_size, tmp_path / f"{member.number:06d}")

        return read

    note = tmp_path / "helper.items"
    with archive.Archive(zip_path) as source:
        plain = [header_in(source)(member) for member in source.members]
        both = forked.map_forked(
            header_in(source), source.members, 2, in_helper=lambda: header_in(source.reopened(), note)
        )

    assert both == plain
    assert note.read_text(), "the helper read some members"
    reasons = {item.reason for item in plain if isinstance(item, archive.Skipped)}
    assert "not a DICOM file" in reasons and any("corrupt" in reason for reason in reasons)
