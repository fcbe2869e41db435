"""The example projects' own tests pass, run as their users run them (``pytest`` there).

They use Tasktronaut's pytest plugin, so they need no broker, database or
worker: the Django example's processes run on the embedded backend.
"""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import DJANGO_PROJECT


def test_the_django_examples_tests_pass() -> None:
    result = subprocess.run(
        # As `pytest` there, leaving no .pytest_cache in the checkout.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=DJANGO_PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed(, \d+ warnings?)? in .*", summary), summary
