"""Per-file work on threads only for big files (studies.imaging.parallel)."""

from __future__ import annotations

import threading

import pytest

from studies.imaging import parallel


def test_results_come_back_in_the_order_of_the_items_when_a_later_one_finishes_first():
    second_done, first_done = threading.Event(), threading.Event()
    finished = []

    def work(item):
        if item == 0:  # waits for item 1: on two threads item 1 finishes first
            assert second_done.wait(timeout=10), "item 1 never ran beside item 0"
        if item >= 2:  # and the rest after item 0, so that the first two finished are 1 then 0
            assert first_done.wait(timeout=10)
        finished.append(item)
        if item == 1:
            second_done.set()
        if item == 0:
            first_done.set()
        return item * 10

    assert list(parallel.map_on(2, work, range(4))) == [0, 10, 20, 30]
    assert finished[:2] == [1, 0]


@pytest.mark.parametrize("threads", [1, 2])
def test_an_exception_in_the_work_reaches_the_caller(threads):
    def work(item):
        if item == 2:
            raise ValueError(f"bad item {item}")
        return item

    with pytest.raises(ValueError, match="bad item 2"):
        list(parallel.map_on(threads, work, range(5)))


@pytest.mark.parametrize("threads", [1, 0, -1])
def test_one_thread_or_fewer_runs_in_the_calling_thread(threads):
    idents = list(parallel.map_on(threads, lambda _item: threading.get_ident(), range(5)))

    assert idents == [threading.get_ident()] * 5


def test_more_threads_run_the_work_off_the_calling_thread():
    idents = list(parallel.map_on(2, lambda _item: threading.get_ident(), range(5)))

    assert threading.get_ident() not in idents


@pytest.mark.parametrize("threshold", [parallel.EXTRACT_THREADED_BYTES, parallel.RENDER_THREADED_PIXELS])
def test_threads_only_from_the_threshold_on(threshold):
    assert parallel.threads_for(threshold - 1, threshold, 2) == 1
    assert parallel.threads_for(threshold, threshold, 2) == 2
    assert parallel.threads_for(threshold * 4, threshold, 4) == 4


@pytest.mark.parametrize("threads", [0, -3])
def test_a_setting_of_no_threads_still_gives_one(threads):
    assert parallel.threads_for(10**9, 1, threads) == 1
