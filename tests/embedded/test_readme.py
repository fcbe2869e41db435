"""The README's example and its demo command work as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tasktronaut_celery import EmbeddedBackend, RunState

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_readme_example_runs(embedded: EmbeddedBackend) -> None:
    """The 20-line example builds, coerces its argument and succeeds on a backend."""
    namespace: dict[str, object] = {"__name__": "readme_example", "backend": embedded}

    exec(fenced("python")[0], namespace)

    run = namespace["run"]
    assert run.state is RunState.SUCCESS  # type: ignore[attr-defined]
    assert [s.name for s in run.steps()] == [  # type: ignore[attr-defined]
        "OnboardCustomer.create_account",
        "OnboardCustomer.send_welcome_email",
        "OnboardCustomer.provision_workspace",
        "OnboardCustomer.notify_sales",
    ]


def test_the_demo_command_succeeds() -> None:
    """The demo command of the README, run with this environment's `tasktronaut`."""
    (install_and_run,) = [block for block in fenced("sh") if "tasktronaut run" in block]
    command = shlex.split(install_and_run.split("&&")[-1])
    assert command[0] == ".venv/bin/tasktronaut"
    command[0] = str(Path(sys.executable).with_name("tasktronaut"))

    result = subprocess.run(
        command,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PublishReport, 7 steps" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("Succeeded in")
