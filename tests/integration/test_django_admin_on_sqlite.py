"""The admin's tests again, on a SQLite database.

In a subprocess: Django is configured once per process, on PostgreSQL here.
A module of its own, so that no worker of the admin's tests still runs here
and takes the subprocess's messages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_admin_works_on_sqlite() -> None:
    """Every test of the admin passes with its runs in a SQLite database."""
    module = Path(__file__).with_name("test_django_admin.py")
    env = {**os.environ, "TASKTRONAUT_TEST_DATABASE": "sqlite"}
    result = subprocess.run(
        # The Redis-backed half reads nothing from the database: PostgreSQL's run covers it.
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "not redis",
            str(module),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, \d+ deselected in .*", summary), summary
