"""forked_map: the same list as a comprehension, shares computed in forked processes, also from
a daemonic process (a Celery prefork child), and never a wrong answer when a child fails."""

from __future__ import annotations

import os

import billiard
import pytest

from studies.imaging.forked import forked_map

PARENT = os.getpid()


def square(x: int) -> int:
    return x * x


def test_results_are_the_comprehensions_in_order():
    items = list(range(101))
    assert forked_map(square, items, 3) == [x * x for x in items]
    assert forked_map(square, [], 3) == []
    assert forked_map(square, [4], 3) == [16]


def test_shares_run_in_other_processes():
    pids = set(forked_map(lambda _: os.getpid(), list(range(40)), 2))
    assert len(pids) == 2 and os.getpid() in pids


def test_a_failing_child_share_is_computed_by_the_caller():
    caller = os.getpid()

    def only_here(x):
        if os.getpid() != caller:
            raise RuntimeError("child failure")
        return x + 1

    assert forked_map(only_here, list(range(30)), 3) == list(range(1, 31))


def test_an_error_in_progress_stops_and_reaps_the_children():
    def stop(fraction):
        raise TimeoutError

    children = []
    real_fork = os.fork

    def fork():
        pid = real_fork()
        children.append(pid)
        return pid

    os.fork = fork
    try:
        with pytest.raises(TimeoutError):
            forked_map(square, list(range(50)), 2, progress=stop)
    finally:
        os.fork = real_fork
    assert children
    for pid in children:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: no child left behind


def scan_in_daemon(_):
    return forked_map(lambda _: os.getpid(), list(range(20)), 2), os.getpid()


def test_works_in_a_daemonic_worker_child():
    with billiard.Pool(1) as pool:  # Celery's prefork children are such processes
        [(pids, daemon_pid)] = pool.map(scan_in_daemon, [0])
    assert len(set(pids)) == 2 and daemon_pid in pids
