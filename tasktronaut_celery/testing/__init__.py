"""Testing your processes: a pytest plugin that runs them for real.

Enable it with ``-p tasktronaut_celery.testing`` or, in the top-level
``conftest.py``, ``pytest_plugins = ["tasktronaut_celery.testing"]``. Its
fixtures (in :mod:`tasktronaut_celery.testing.plugin`): ``tasktronaut_backend``
(an embedded backend with no runs of other tests), ``tasktronaut_steps``
(what steps received; faults to inject), ``tasktronaut_app_backend`` (your
``celery_app`` with ``celery.contrib.pytest``) and ``tasktronaut_snapshot``
(graph snapshots). :func:`assert_run` checks how a run ended.
"""

from .assertions import RunOutcome, assert_run, run_outcome
from .plugin import forget_runs
from .snapshots import GraphSnapshot
from .steps import StepAttempt, StepHarness, harnessing

pytest_plugins = ["tasktronaut_celery.testing.plugin"]

__all__ = [
    "GraphSnapshot",
    "RunOutcome",
    "StepAttempt",
    "StepHarness",
    "assert_run",
    "forget_runs",
    "harnessing",
    "run_outcome",
]
