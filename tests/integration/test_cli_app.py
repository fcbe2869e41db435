"""The tasktronaut command against a user's Celery app: run, status and cancel by id."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from tasktronaut import ProcessDefinition
from tasktronaut_celery import StepState
from tasktronaut_celery.cli import EXIT_CANCELLED, EXIT_FAILED, main
from tests.services import BROKERS, EVENTS, RESULTS
from tests.support import celery_worker, tasktronaut_command, wait_until

from . import processes, resumable, worker_app
from .recorder import Recorder

APP = "tests.integration.worker_app:app"


pytestmark = pytest.mark.usefixtures("user_worker")


def test_run_with_app_enqueues_on_it_and_follows_the_run() -> None:
    """The user's own worker runs the process; the command exits 0 with the summary."""
    result = CliRunner().invoke(main, ["run", "examples.user_guide:MainProcess", "--app", APP])

    assert result.exit_code == 0, result.output
    assert "ValidationProcess.check_constraints  SUCCESS" in result.output


def test_status_and_cancel_by_run_id() -> None:
    """Status shows a running run; cancel stops it; a second cancel says it had ended."""
    run = processes.Gated.build().enqueue(worker_app.backend)
    wait_until(lambda: run.steps()[0].state is StepState.STARTED, 30, "the first step starting")

    status = CliRunner().invoke(main, ["status", run.id, "--app", "tests.integration.worker_app"])
    cancel = CliRunner().invoke(main, ["cancel", run.id, "--app", APP])
    again = CliRunner().invoke(main, ["cancel", run.id, "--app", APP])
    redis.Redis.from_url(EVENTS).rpush(processes.gate_key(run.id), "open")

    assert status.exit_code == 0
    assert f"Run {run.id}: RUNNING" in status.output
    assert "Gated.wait_at_gate" in status.output
    assert cancel.output.strip() == f"Run {run.id} cancelled."
    assert again.output.strip() == f"Run {run.id} had already ended: CANCELLED."


def test_status_of_an_unknown_run_is_an_error() -> None:
    """An id that was never enqueued gets a one-paragraph error and exit code 1."""
    result = CliRunner().invoke(main, ["status", "no-such-run", "--app", APP])

    assert result.exit_code == EXIT_FAILED
    assert result.output.startswith("Error: run 'no-such-run' does not exist")


def test_an_unreachable_broker_is_reported_in_one_paragraph() -> None:
    """With nothing listening on the app's Redis the command says so and exits 1."""
    result = CliRunner().invoke(
        main,
        ["run", "examples.user_guide:MyProcess", "--app", "tests.integration.unreachable:app"],
    )

    assert result.exit_code == EXIT_FAILED, result.output
    assert result.output.startswith("Error: MyProcess run ")
    assert "the result backend at redis://127.0.0.1:1/1 did not answer" in result.output
    assert "nothing was stored or sent" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("definition", "code", "ending"),
    [
        (processes.FailsOnce, EXIT_FAILED, "Failed at step 1 (FailsOnce.explode): ValueError"),
        (processes.CancelsItself, EXIT_CANCELLED, "Cancelled: CancelProcessError: customer"),
    ],
)
def test_status_of_an_ended_run_exits_like_run(
    definition: type[ProcessDefinition], code: int, ending: str
) -> None:
    """A failed run exits 1, a cancelled one 3, each saying why as `run` does."""
    run = definition.build().enqueue(worker_app.backend)
    wait_until(lambda: run.record.settled_at is not None, 30, "the run settling")

    result = CliRunner().invoke(main, ["status", run.id, "--app", APP])

    assert result.exit_code == code, result.output
    assert ending in result.output


def test_status_of_a_run_cancelled_by_a_client_says_so() -> None:
    """Not 'at step None': the client's cancel is the reason, and the exit code is 3."""
    run = processes.Gated.build().enqueue(worker_app.backend)
    wait_until(lambda: run.steps()[0].state is StepState.STARTED, 30, "the first step starting")
    run.cancel()
    redis.Redis.from_url(EVENTS).rpush(processes.gate_key(run.id), "open")
    wait_until(lambda: run.record.settled_at is not None, 30, "the run settling")

    result = CliRunner().invoke(main, ["status", run.id, "--app", APP])

    assert result.exit_code == EXIT_CANCELLED, result.output
    assert "None" not in result.output
    assert result.output.splitlines()[-1] == "Cancelled by a client."


def test_status_watch_follows_a_run_started_elsewhere_to_its_end() -> None:
    """`status --watch` shows progress while the run waits, then the summary and exit code 0."""
    run = processes.Gated.build().enqueue(worker_app.backend)
    watcher = subprocess.Popen(
        [sys.executable, "-c", "from tasktronaut_celery.cli import main; main()",
         "status", run.id, "--app", APP, "--watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert watcher.stdout is not None
    header = watcher.stdout.readline()
    progress = watcher.stdout.readline()  # the gated step is running: the watcher waits
    redis.Redis.from_url(EVENTS).rpush(processes.gate_key(run.id), "open")
    rest, errors = watcher.communicate(timeout=60)

    assert watcher.returncode == 0, errors
    assert header.startswith(f"Run {run.id}: ")
    assert progress == "[0/4] running: Gated.wait_at_gate (0)\n"
    assert "Gated.wait_at_gate  SUCCESS" in rest
    assert rest.splitlines()[-1] == "Succeeded."


def test_run_timeout_says_how_to_follow_the_run_again() -> None:
    """The exact `status --watch` command to re-attach, with the --app given."""
    identifier = f"cli-timeout-{os.getpid()}"
    result = CliRunner().invoke(
        main,
        ["run", "tests.integration.processes:Gated", "--app", APP, "--timeout", "0.5",
         "--identifier", identifier],
    )  # fmt: skip
    redis.Redis.from_url(EVENTS).rpush(processes.gate_key(identifier), "open")

    assert result.exit_code == EXIT_FAILED, result.output
    assert (
        f"Follow it again with: tasktronaut status {identifier} --app {APP} --watch"
        in result.output
    )


def test_app_names_a_project_package_as_celery_a_does(tmp_path: Path) -> None:
    """`--app proj` finds proj/celery.py's app, and its backend, as `celery -A proj worker` does.

    The project's backend sends its own tasks to a control queue that only its
    worker consumes, and nobody consumes the app's default queue: the command
    must enqueue with that backend, not one of its own with default settings.
    """
    project = tmp_path / "proj"
    project.mkdir()
    (project / "__init__.py").write_text("")
    (project / "celery.py").write_text(
        textwrap.dedent(f"""
            from celery import Celery

            from tasktronaut_celery import CeleryBackend

            app = Celery("proj", broker={BROKERS["redis"]!r}, backend={RESULTS!r})
            app.conf.task_default_queue = "cli-proj-nobody"
            backend = CeleryBackend(app, control_queue="cli-proj-control")

            from . import processes  # noqa: E402  (the worker runs them)
        """)
    )
    (project / "processes.py").write_text(
        textwrap.dedent("""
            from tasktronaut import Builder, ProcessDefinition


            class Greeting(ProcessDefinition):
                def define_process(self, builder: Builder) -> None:
                    builder.task(self.greet, description="Saying hello", queue="cli-proj")

                def greet(self) -> None:
                    pass
        """)
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    queues = ("-Q", "cli-proj,cli-proj-control")
    with celery_worker("proj", "proj@cli", tmp_path, env, BROKERS["redis"], *queues):
        result = tasktronaut_command(
            "run", "proj.processes:Greeting", "--app", "proj", "--timeout", "30", cwd=tmp_path
        )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Greeting.greet  SUCCESS" in result.stdout
    assert "Saying hello" in result.stdout


def test_retry_completes_a_run_failed_at_step_7_of_10_running_steps_0_to_6_once(
    recorder: Recorder,
) -> None:
    """The issue's bar: `tasktronaut retry --wait` resumes at step 7 and exits 0."""
    run_id = f"cli-retry-{uuid.uuid4().hex}"
    resumable.break_steps(run_id, "step 7")
    run = resumable.TenSteps.build(identifier=run_id).enqueue(worker_app.backend)
    wait_until(lambda: run.record.settled_at is not None, 30, "the run failing")
    resumable.mend(run_id)

    result = CliRunner().invoke(main, ["retry", run_id, "--app", APP, "--wait"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Run {run_id} resumed (resume 1): 3 steps to run.\n")
    assert "Succeeded in" in result.output
    ran = Counter(event["path"] for event in recorder.steps(run_id))
    assert [ran[str(number)] for number in range(10)] == [1] * 7 + [2, 1, 1]


def test_runs_lists_failed_runs_as_a_table() -> None:
    """`runs --state failed` shows the run's definition, progress and failing step."""
    failed = f"cli-runs-{uuid.uuid4().hex}"
    resumable.break_steps(failed, "step 7")
    ended = [
        resumable.TenSteps.build(identifier=failed).enqueue(worker_app.backend),
        resumable.TenSteps.build().enqueue(worker_app.backend),
    ]
    for run in ended:
        wait_until(lambda run=run: run.record.settled_at is not None, 30, "the runs ending")
    arguments = ["--app", APP, "--definition", "TenSteps", "--since", "10m"]

    listed = CliRunner().invoke(main, ["runs", *arguments, "--state", "failed"])
    newest = CliRunner().invoke(main, ["runs", *arguments, "--limit", "1"])

    assert listed.exit_code == 0, listed.output
    header, *rows = listed.output.splitlines()
    assert header.split() == [
        "id", "definition", "state", "progress", "started", "(UTC)", "duration", "failing", "step"
    ]  # fmt: skip
    (row,) = [row for row in rows if row.startswith(failed)]
    cells = re.split(r"\s{2,}", row)
    assert cells[1:4] == ["TenSteps", "FAILURE", "7/10, 1 failed"]
    assert cells[-1] == "7: RuntimeError: step 7 is broken"
    assert ended[1].id not in listed.output
    assert newest.output.splitlines()[1].startswith(ended[1].id)


@pytest.mark.parametrize(
    ("command", "code", "message"),
    [
        (
            ["runs", "--state", "finished"],
            2,
            "Error: unknown run state 'finished': one of pending",
        ),
        (["runs", "--since", "yesterday"], 2, "Error: cannot read 'yesterday' as an age"),
        (["prune", "--older-than", "7x"], 2, "Error: cannot read '7x' as an age"),
        (["prune", "--older-than", "7d", "--state", "running"], 2, "only ended runs are pruned"),
        (["retry", "no-such-run"], 1, "Error: run 'no-such-run' does not exist"),
        (["graph", "--run", "no-such-run"], 1, "Error: run 'no-such-run' does not exist"),
    ],
)
def test_operating_commands_refuse_bad_input_in_one_paragraph(
    command: list[str], code: int, message: str
) -> None:
    result = CliRunner().invoke(main, [*command, "--app", APP])

    assert result.exit_code == code, result.output
    assert result.output.startswith(message) or message in result.output
    assert "Traceback" not in result.output


def test_retry_of_a_run_that_succeeded_is_refused() -> None:
    run = resumable.BrokenMember.build().enqueue(worker_app.backend).wait(timeout=30)

    result = CliRunner().invoke(main, ["retry", run.id, "--app", APP])

    assert result.exit_code == EXIT_FAILED
    assert f"run {run.id} cannot be retried: it is SUCCESS" in result.output


def test_graph_of_a_run_colours_each_step_by_its_state() -> None:
    run_id = f"cli-graph-{uuid.uuid4().hex}"
    resumable.break_steps(run_id, "step 7")
    run = resumable.TenSteps.build(identifier=run_id).enqueue(worker_app.backend)
    wait_until(lambda: run.record.settled_at is not None, 30, "the run failing")

    mermaid = CliRunner().invoke(main, ["graph", "--run", run_id, "--app", APP])
    dot = CliRunner().invoke(main, ["graph", "--run", run_id, "--app", APP, "--format", "dot"])

    assert mermaid.exit_code == 0, mermaid.output
    assert "    class s_0,s_1,s_2,s_3,s_4,s_5,s_6 success" in mermaid.output
    assert "    class s_7 failure" in mermaid.output
    assert "    class s_8,s_9 skipped" in mermaid.output
    assert 's_7 [label="step", shape=box, style=filled, fillcolor="#ffcdd2"' in dot.output


def test_prune_forgets_ended_runs_older_than_the_age() -> None:
    run = resumable.BrokenMember.build().enqueue(worker_app.backend).wait(timeout=30)

    kept = CliRunner().invoke(main, ["prune", "--app", APP, "--older-than", "1h"])
    assert worker_app.backend.store.record(run.id) is not None
    pruned = CliRunner().invoke(main, ["prune", "--app", APP, "--older-than", "0s"])

    assert kept.exit_code == pruned.exit_code == 0
    assert worker_app.backend.store.record(run.id) is None
    assert pruned.output.startswith("Pruned ")
    assert int(pruned.output.split()[1]) >= 1
