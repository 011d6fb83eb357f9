"""The test run's own environment (tests/testenv.py)."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from tests import testenv


def test_each_test_process_has_its_own_var_folder():
    """The ingest's claims (flock files under VAR_DIR/locks) are keyed by upload id, and every
    xdist worker's database numbers its uploads from 1: shared (`make test` exports VAR_DIR=var),
    one worker's ingest of upload 1 made another's stay queued."""
    assert Path(settings.VAR_DIR).is_relative_to(testenv._scratch)
    assert os.environ["VAR_DIR"] == str(Path(testenv._scratch) / "var")
