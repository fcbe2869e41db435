"""The core package never imports Celery (DESIGN §1): a sibling backend must not pay for it."""

from __future__ import annotations

import json
import subprocess
import sys

# Run in a fresh interpreter: this one has Celery loaded by other tests.
PROBE = """
import importlib, json, pkgutil, sys
import tasktronaut
for module in pkgutil.walk_packages(tasktronaut.__path__, "tasktronaut."):
    importlib.import_module(module.name)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {"celery", "kombu"})))
"""


def test_importing_the_core_loads_neither_celery_nor_kombu() -> None:
    """``import tasktronaut`` and each of its modules leave celery and kombu out of sys.modules."""
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )

    assert json.loads(probe.stdout) == []
