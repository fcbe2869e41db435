"""Testing your processes: a pytest plugin that runs them for real.

Enable it with ``-p tasktronaut_celery.testing`` or, in a ``conftest.py``,
``pytest_plugins = ["tasktronaut_celery.testing"]``. It gives the fixtures
``tasktronaut_backend`` (an embedded backend, no runs left from other tests),
``tasktronaut_steps`` (what steps received; faults to inject),
``tasktronaut_celery_backend`` (your ``celery_app`` with
``celery.contrib.pytest``) and ``tasktronaut_snapshot`` (graph snapshots);
:func:`assert_run` checks how a run ended.
"""

from .assertions import RunOutcome, assert_run, run_outcome
from .plugin import (
    forget_runs,
    pytest_addoption,
    tasktronaut_backend,
    tasktronaut_celery_backend,
    tasktronaut_session_backend,
    tasktronaut_snapshot,
    tasktronaut_steps,
)
from .snapshots import GraphSnapshot
from .steps import StepCall, StepHarness

__all__ = [
    "GraphSnapshot",
    "RunOutcome",
    "StepCall",
    "StepHarness",
    "assert_run",
    "forget_runs",
    "pytest_addoption",
    "run_outcome",
    "tasktronaut_backend",
    "tasktronaut_celery_backend",
    "tasktronaut_session_backend",
    "tasktronaut_snapshot",
    "tasktronaut_steps",
]
