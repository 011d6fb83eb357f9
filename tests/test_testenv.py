"""The test run's own environment (tests/testenv.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from tests import testenv


def test_each_xdist_worker_has_its_own_var_folder():
    """The ingest's claims (flock files under VAR_DIR/locks) are keyed by upload id, and every
    worker's database numbers its uploads from 1: shared, one worker's ingest of upload 1 made
    another's stay queued."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("only under pytest-xdist (make test)")
    assert Path(settings.VAR_DIR).is_relative_to(testenv._scratch)
