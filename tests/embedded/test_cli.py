"""The tasktronaut command on the embedded default: output, exit codes, one-paragraph errors."""

from __future__ import annotations

import contextlib
import inspect
import json
import re

import pytest
from click.testing import CliRunner, Result

from examples.user_guide import ComplexProcess, MixedProcess
from tasktronaut_celery import ProcessFailed, Run, cli
from tasktronaut_celery.cli import EXIT_CANCELLED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, main
from tests.integration import processes
from tests.support import tasktronaut_command


def invoke(*arguments: str) -> Result:
    return CliRunner().invoke(main, list(arguments), catch_exceptions=False)


def test_run_follows_a_process_to_success_and_prints_a_summary() -> None:
    """Exit code 0, progress lines, and one summary row per step in order."""
    items = json.dumps([f"item-{number}" for number in range(12)])  # two batches of ten
    result = invoke("run", "examples.user_guide:ComplexProcess", f"items={items}")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("ComplexProcess, 6 steps")
    table = lines[lines.index(next(line for line in lines if line.startswith("path"))) + 1 :]
    assert [row.split()[:3] for row in table[:6]] == [
        ["0", "ComplexProcess.setup", "SUCCESS"],
        ["1.0", "ComplexProcess.process_item_a", "SUCCESS"],
        ["1.1", "ComplexProcess.process_item_b", "SUCCESS"],
        ["2.0", "ComplexProcess.process_item_a", "SUCCESS"],
        ["2.1", "ComplexProcess.process_item_b", "SUCCESS"],
        ["3", "ComplexProcess.finalize", "SUCCESS"],
    ]
    assert lines[-1].startswith("Succeeded in")


def test_values_are_json_when_they_parse_and_validated_by_expected_arguments() -> None:
    """count="3" (a JSON number) and date (a string) are coerced; options reach the builder."""
    result = invoke(
        "run",
        "examples.user_guide:ProcessWithArguments",
        "name=report",
        "count=3",
        "date=2026-11-29",
        'tags=["x"]',
        "data=null",
    )

    assert result.exit_code == 0, result.output


def test_a_failing_run_exits_1_naming_the_step_and_error() -> None:
    """The failing step and its error are shown; later steps are SKIPPED."""
    result = CliRunner().invoke(main, ["run", "tests.integration.processes:FailsOnce"])

    assert result.exit_code == EXIT_FAILED
    assert (
        "Failed at step 1 (FailsOnce.explode): ValueError: the ledger does not balance"
        in result.output
    )
    assert "FailsOnce.never" in result.output
    assert "SKIPPED" in result.output


@pytest.mark.parametrize(
    ("definition", "ending"),
    [
        (
            "CompletesBadly",
            "Failed in on_completed of CompletesBadly: ValueError: the report could not be filed",
        ),
        (
            "OuterOfStartsBadly",
            "Failed in on_started of OuterOfStartsBadly > StartsBadly: "
            "ValueError: no partner session",
        ),
    ],
)
def test_a_failing_hook_is_named_with_its_process(definition: str, ending: str) -> None:
    """Not 'at step  (...)': the hook and the (sub-)process whose hook raised, then its frames."""
    result = CliRunner().invoke(main, ["run", f"tests.embedded.cli_processes:{definition}"])

    assert result.exit_code == EXIT_FAILED, result.output
    lines = result.output.splitlines()
    assert lines[lines.index(ending) + 1] == "Traceback of your code (most recent call last):"
    assert "Failed at" not in result.output


def test_a_cancelled_run_exits_3() -> None:
    """A run cancelled by its own step ends the command with exit code 3."""
    result = CliRunner().invoke(main, ["run", "tests.integration.processes:CancelsItself"])

    assert result.exit_code == EXIT_CANCELLED
    assert "Cancelled: CancelProcessError: customer withdrew the order" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["run", "no_such_module:X"], "cannot import module 'no_such_module'"),
        (["run", "examples.user_guide:Nope"], "has no 'Nope'"),
        (["run", "examples.user_guide:logger"], "not a ProcessDefinition subclass"),
        (["run", "examples.user_guide"], "name the process as module:Definition"),
        (["run", "examples.user_guide:MyProcess", "oops"], "must look like name=value"),
        (
            ["run", "examples.user_guide:ProcessWithArguments", "count=abc"],
            "ProcessWithArguments: 4 invalid arguments",
        ),
        (
            ["run", "examples.user_guide:ConditionalProcess", "--option", "enable_logging=maybe"],
            "enable_logging",
        ),
        *(
            (
                ["run", "examples.demo:PublishReport", "title=x", f"{name}=foo"],
                f"argument name {name!r} is reserved",
            )
            for name in ("identifier", "options", "self", "context")
        ),
        (
            ["run", "examples.user_guide:MyProcess", "--app", "no_such_app"],
            "cannot import module 'no_such_app'",
        ),
        (
            ["run", "examples.user_guide:MyProcess", "--app", "examples"],
            "cannot find a Celery app in 'examples' the way `celery -A` does",
        ),
        (
            ["run", "examples.user_guide:MyProcess", "--app", "examples.user_guide:MyProcess"],
            "neither a Celery app",
        ),
    ],
)
def test_bad_input_is_one_paragraph_and_exit_code_2(arguments: list[str], message: str) -> None:
    """No traceback: a single 'Error:' paragraph that names the problem."""
    result = CliRunner().invoke(main, arguments)

    assert result.exit_code == EXIT_USAGE, result.output
    assert result.output.startswith("Error: ")
    assert message in result.output
    assert "Traceback" not in result.output


def test_show_prints_the_built_tree() -> None:
    """`show` prints exactly what Process.render() gives."""
    result = invoke("show", "examples.user_guide:ComplexProcess", 'items=["a","b"]')

    assert result.exit_code == 0
    assert result.output.strip() == ComplexProcess.build(items=["a", "b"]).render()


@pytest.mark.parametrize(("output", "opening"), [("mermaid", "flowchart TD"), ("dot", "digraph")])
def test_graph_prints_mermaid_or_dot(output: str, opening: str) -> None:
    """`graph` prints the chosen diagram of the built process."""
    result = invoke("graph", "examples.user_guide:MainProcess", "--format", output)

    assert result.exit_code == 0
    assert result.output.startswith(opening)
    assert "check_schema" in result.output


def test_graph_draws_svg_as_process_to_svg_does() -> None:
    result = invoke("graph", "examples.user_guide:MixedProcess", "--format", "svg")

    assert result.exit_code == 0
    assert result.output == MixedProcess.build().to_svg() + "\n"


def test_graph_needs_a_process_or_a_run() -> None:
    nothing = CliRunner().invoke(main, ["graph"])
    both = CliRunner().invoke(main, ["graph", "examples.user_guide:MainProcess", "--run", "x"])
    no_app = CliRunner().invoke(main, ["graph", "--run", "x"])

    assert (nothing.exit_code, both.exit_code, no_app.exit_code) == (EXIT_USAGE,) * 3
    assert nothing.output.startswith("Error: name a process (module:Definition) or a run")
    assert both.output.startswith("Error: --run draws a run with the arguments it was enqueued")
    assert no_app.output.startswith("Error: --run needs the run's Celery app: --app MODULE:APP")


def test_a_failing_step_is_one_error_with_the_users_frames_only() -> None:
    """The step's own frames and error once; Celery's trace log and the runner's frames with -v."""
    source, first = inspect.getsourcelines(processes.FailsOnce.explode)
    raise_line = first + next(i for i, line in enumerate(source) if "raise ValueError" in line)
    quiet = tasktronaut_command("run", "tests.integration.processes:FailsOnce")
    verbose = tasktronaut_command("run", "tests.integration.processes:FailsOnce", "-v")

    assert quiet.returncode == verbose.returncode == EXIT_FAILED
    assert quiet.stderr.endswith(
        "Failed at step 1 (FailsOnce.explode): ValueError: the ledger does not balance\n"
        "Traceback of your code (most recent call last):\n"
        f'  File "{processes.__file__}", line {raise_line}, in explode\n'
        '    raise ValueError("the ledger does not balance")\n'
    ), quiet.stderr
    assert "Traceback (most recent call last)" not in quiet.stderr
    for noise in ("raised unexpected", "celery/app/trace.py", "tasktronaut_celery/runner.py"):
        assert noise not in quiet.stderr
        assert noise in verbose.stderr


def test_progress_shows_retries_and_nothing_before_a_step_started() -> None:
    """Live progress names the retry under way and the one due; no [0/N] line before a start."""
    result = invoke("run", "tests.embedded.cli_processes:RetriesSlowly")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith(": RetriesSlowly, 1 step")
    assert not any(re.match(r"\[0/\d+\] waiting", line) for line in lines)
    progress = "\n".join(line for line in lines if line.startswith("[0/1] running:"))
    assert "RetriesSlowly.call_partner (0, waiting for retry 1 of 3)" in progress
    assert "RetriesSlowly.call_partner (0, retry 2 of 3)" in progress


def test_summary_shows_step_descriptions() -> None:
    """The table's last column is each step's description."""
    result = invoke(
        "run", "examples.user_guide:IterativeProcessWithDescriptions", 'files=["a.csv", "b.csv"]'
    )

    assert result.exit_code == 0, result.output
    rows = [line.split(None, 6) for line in result.output.splitlines()]
    table = rows[[row[0] for row in rows].index("path") :]
    assert [(row[0], row[-1]) for row in table[:3]] == [
        ("path", "description"),
        ("0", "Processing a.csv"),
        ("1", "Processing b.csv"),
    ]


@pytest.mark.parametrize(
    ("definition", "interrupted", "message"),
    [
        ("Overlapping", "at once", "Interrupted: the run was cancelled."),
        ("FailsOnce", "after the end", "Interrupted: the run had already ended (FAILURE)."),
    ],
)
def test_ctrl_c_says_whether_it_cancelled_the_run(
    monkeypatch: pytest.MonkeyPatch, definition: str, interrupted: str, message: str
) -> None:
    """Ctrl-C cancels a run under way; one that has ended is left as it ended, and says so."""

    def interrupt(handle: Run, deadline: float | None) -> bool:
        if interrupted == "after the end":
            with contextlib.suppress(ProcessFailed):
                handle.wait(timeout=30)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "watch", interrupt)
    result = invoke("run", f"tests.integration.processes:{definition}")

    assert result.exit_code == EXIT_INTERRUPTED
    assert result.output.splitlines()[-1] == message
