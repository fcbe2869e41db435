"""Enqueue the check's process on ``proj``'s Celery app as a client does, and wait for SUCCESS.

Usage: ``client.py LABEL TIMEOUT``. Exits non-zero (with the run's error) unless
the run succeeded and every step left its mark.
"""

import os
import sys
from pathlib import Path


def main(label: str, timeout: float) -> int:
    """Run the process once; 0 if it succeeded and its three steps ran, else 1."""
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        import django

        django.setup()
    from proj.celery import backend
    from proj.processes import Pristine

    run = Pristine.build(label=label).enqueue(backend)
    run.wait(timeout=timeout)  # raises ProcessFailed, ProcessCancelled or TimeoutError
    steps = run.steps()
    for step in steps:
        print(f"  step {step.path} {step.name}: {step.state.value}")
    marks = sorted(path.name for path in Path(os.environ["PRISTINE_MARKS"]).glob(f"{label}.*"))
    if [step.state.value for step in steps] != ["SUCCESS"] * 3 or len(marks) != 3:
        print(f"run {run.id} is {run.state.value} but its steps or marks are not: {marks}")
        return 1
    print(f"  run {run.id}: {run.state.value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
