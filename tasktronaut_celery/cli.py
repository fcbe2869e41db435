"""The ``tasktronaut`` command: run, show and graph processes, follow and cancel runs.

Without ``--app`` a process runs on the embedded default (an in-process
Celery app and worker, nothing to install); with ``--app proj.celery:app`` it is
enqueued on your own app and followed while your workers run it. Bad input is
reported in one paragraph, never as a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shlex
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import celery
import click
import kombu
from celery.signals import task_failure

import tasktronaut
from tasktronaut.builder import build_process
from tasktronaut.definition import ProcessDefinition
from tasktronaut.errors import TasktronautError
from tasktronaut.process import Process

from . import listing
from .backend import CANCELLED_BY_CLIENT, CeleryBackend
from .embedded import EmbeddedBackend
from .errors import (
    CONNECTION_ERRORS,
    BrokerUnavailableError,
    ProcessCancelled,
    ProcessFailed,
    RunError,
)
from .locating import locate_backend
from .run import Run, StepStatus
from .store import RunState, StepState

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_INTERRUPTED = 130
_ENDED_EXIT_CODES = {RunState.FAILURE: EXIT_FAILED, RunState.CANCELLED: EXIT_CANCELLED}

# How long to wait, once a run has failed, for the failing task's signal to bring its
# traceback (it comes just after the run ends; a busy machine can be slow).
FAILURE_SIGNAL_TIMEOUT = 5.0

# Where a traceback's frames are Celery's and Tasktronaut's, not the user's.
_LIBRARY_DIRECTORIES = tuple(
    os.path.dirname(path) + os.sep
    for path in (celery.__file__, kombu.__file__, tasktronaut.__file__, __file__)
    if path
)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` as one paragraph on stderr and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _import_from_cwd() -> None:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `celery -A`, find modules where you stand


def load_object(reference: str, what: str) -> Any:
    """The object named by ``module:attribute``, imported."""
    _import_from_cwd()
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        fail(f"cannot import module {module_name!r} for the {what} {reference!r}: {error}")
    if not hasattr(module, attribute):
        fail(f"module {module_name!r} has no {attribute!r} for the {what}")
    return getattr(module, attribute)


def load_definition(reference: str) -> type[ProcessDefinition]:
    """The ``ProcessDefinition`` subclass named by ``module:Class``."""
    if ":" not in reference:
        fail(
            f"name the process as module:Definition (e.g. examples.user_guide:MainProcess), not {reference!r}"
        )
    definition = load_object(reference, "process definition")
    if not (isinstance(definition, type) and issubclass(definition, ProcessDefinition)):
        fail(f"{reference!r} is {definition!r}, not a ProcessDefinition subclass")
    return definition


def parse_assignments(pairs: Sequence[str], what: str) -> dict[str, Any]:
    """``name=value`` pairs as a dict; values are JSON when they parse, else strings."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        name, equals, raw = pair.partition("=")
        if not equals or not name.isidentifier():
            fail(
                f"{what} must look like name=value (e.g. count=3 or tags='[\"a\"]'), got {pair!r}"
            )
        try:
            parsed[name] = json.loads(raw)
        except ValueError:
            parsed[name] = raw
    return parsed


def build(
    reference: str,
    arguments: Sequence[str],
    options: Sequence[str] = (),
    identifier: str | None = None,
) -> Process:
    """Build the named process, reporting bad input in one paragraph."""
    definition = load_definition(reference)
    kwargs = parse_assignments(arguments, "arguments")
    flags = parse_assignments(options, "--option")
    try:
        # As a mapping, not as build()'s keywords: an argument named like one of
        # them ("identifier", "options") is then refused as reserved, as any is.
        return build_process(definition, identifier=identifier, options=flags, arguments=kwargs)
    except TasktronautError as error:
        fail(str(error))


def load_backend(reference: str) -> CeleryBackend:
    """The backend for ``--app``: a ``CeleryBackend``, or the one serving a ``Celery`` app.

    Modules are looked for where the command runs, as ``celery -A`` does.
    """
    _import_from_cwd()
    try:
        return locate_backend(reference)
    except TasktronautError as error:
        fail(str(error))


@contextlib.contextmanager
def connection_errors(backend: CeleryBackend) -> Iterator[None]:
    """Turn an unreachable broker or result backend into a one-paragraph error."""
    try:
        yield
    except CONNECTION_ERRORS as error:
        fail(
            f"cannot reach the broker or result backend of Celery app {backend.app.main!r} "
            f"({type(error).__name__}: {error}). Is it running, and are broker_url and "
            "result_backend right?",
            EXIT_FAILED,
        )


@click.group()
@click.version_option(package_name="tasktronaut")
def main() -> None:
    """Run Tasktronaut processes on Celery, or on the embedded default."""


@main.command()
@click.argument("definition")
@click.argument("arguments", nargs=-1)
@click.option("--option", "options", multiple=True, metavar="NAME=VALUE", help="A boolean option.")
@click.option("--app", "app", metavar="MODULE:APP", help="Enqueue on this Celery app.")
@click.option("--identifier", help="The run identifier (default: a random one).")
@click.option("--timeout", type=float, help="Give up waiting after this many seconds.")
@click.option("-v", "--verbose", is_flag=True, help="Show the log of the embedded worker.")
def run(
    definition: str,
    arguments: tuple[str, ...],
    options: tuple[str, ...],
    app: str | None,
    identifier: str | None,
    timeout: float | None,
    verbose: bool,
) -> None:
    """Run DEFINITION (module:Class) with NAME=VALUE arguments and follow it to the end."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="  %(levelname)s %(name)s: %(message)s",
    )
    process = build(definition, arguments, options, identifier)
    if app is None:
        with quiet_celery(verbose), EmbeddedBackend() as embedded, user_frames(embedded) as frames:
            follow(embedded, process, timeout, None, frames)
    else:
        follow(load_backend(app), process, timeout, app)


@contextlib.contextmanager
def quiet_celery(verbose: bool) -> Iterator[None]:
    """Keep Celery's own log (its trace of a failing task) off the terminal unless ``verbose``.

    The embedded worker runs in this process, so its log would go to the
    same terminal as the progress and the step's error.
    """
    celery_logger = logging.getLogger("celery")
    level = celery_logger.level
    if not verbose:
        celery_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        celery_logger.setLevel(level)


Frames = Callable[[], list[traceback.FrameSummary]]
"""Gives the frames of the user's code in the failure that failed a run."""


def no_frames() -> list[traceback.FrameSummary]:
    """A worker elsewhere keeps its tracebacks in its own log."""
    return []


@contextlib.contextmanager
def user_frames(backend: CeleryBackend) -> Iterator[Frames]:
    """The frames of the user's code in the last task failure of ``backend``'s worker.

    Filled from Celery's ``task_failure`` signal, so only for a worker in
    this process (the embedded default). The exception a task raises hides
    sensitive values (see ``tasktronaut.sensitive``) and frames show code,
    not values. Celery sends the signal just after the runner has failed the
    run, so asking waits for it a moment.
    """
    frames: list[traceback.FrameSummary] = []
    signalled = threading.Event()

    def failed(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
        if getattr(sender, "app", None) is backend.app and exception is not None:
            frames[:] = [
                frame
                for frame in traceback.extract_tb(exception.__traceback__)
                if not frame.filename.startswith(_LIBRARY_DIRECTORIES)
            ]
            signalled.set()

    def last_failure() -> list[traceback.FrameSummary]:
        signalled.wait(FAILURE_SIGNAL_TIMEOUT)
        return frames

    task_failure.connect(failed, weak=False)
    try:
        yield last_failure
    finally:
        task_failure.disconnect(failed)


def follow(
    backend: CeleryBackend,
    process: Process,
    timeout: float | None,
    app: str | None,
    frames: Frames = no_frames,
) -> NoReturn:
    """Enqueue ``process``, show its progress, then its summary; exit with its outcome.

    ``app`` is the ``--app`` given, for the command that re-attaches after a
    timeout; ``frames`` gives those of the user's code in a failing step.
    """
    started = time.monotonic()
    with connection_errors(backend):
        try:
            handle = process.enqueue(backend)
        except BrokerUnavailableError as error:
            fail(str(error), EXIT_FAILED)
        except TasktronautError as error:
            fail(str(error))
        click.echo(f"Run {handle.id}: {process.definition.__qualname__}, {steps(len(process))}")
        try:
            deadline = None if timeout is None else started + timeout
            if not watch(handle, deadline):
                click.echo(f"Still {handle.state.value} after {timeout} s; not waiting.", err=True)
                if app is None:
                    click.echo("The embedded run ends with this command.", err=True)
                else:
                    command = ["tasktronaut", "status", handle.id, "--app", app, "--watch"]
                    click.echo(f"Follow it again with: {shlex.join(command)}", err=True)
                sys.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            if handle.cancel():
                click.echo("Interrupted: the run was cancelled.", err=True)
            elif (state := handle.state).finished:
                click.echo(f"Interrupted: the run had already ended ({state.value}).", err=True)
            else:  # its top-level process is completing: the cancel lost to it
                click.echo("Interrupted: the run was completing; it was not cancelled.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(conclude(handle, time.monotonic() - started, frames))


def steps(count: int) -> str:
    """``1 step``, ``2 steps``."""
    return f"{count} step" if count == 1 else f"{count} steps"


def times(count: int) -> str:
    """``once``, ``twice``, ``3 times``."""
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def watch(handle: Run, deadline: float | None) -> bool:
    """Print a progress line whenever it changes until the run settles; ``False`` at the deadline.

    Nothing is printed before the first step has started.
    """
    last = ""
    while True:
        statuses = handle.steps()
        line = progress_line(statuses)
        if line != last and any(s.started_at is not None for s in statuses):
            click.echo(line)
            last = line
        try:
            handle.wait(timeout=0.2)
        except TimeoutError:
            if deadline is not None and time.monotonic() > deadline:
                return False
            continue
        except RunError:
            pass
        return True


def conclude(handle: Run, elapsed: float | None, frames: Frames = no_frames) -> int:
    """Print the summary of the settled run and how it ended; return the exit code."""
    summarize(handle.steps())
    try:
        handle.wait(timeout=0)
    except ProcessFailed as failure:
        click.echo(failure_line(failure), err=True)
        user_code = frames()
        if user_code:
            trace = "".join(traceback.format_list(user_code))
            click.echo(
                f"Traceback of your code (most recent call last):\n{trace}", err=True, nl=False
            )
        return EXIT_FAILED
    except ProcessCancelled as cancelled:
        if cancelled.reason == CANCELLED_BY_CLIENT:
            click.echo("Cancelled by a client.", err=True)
        else:
            click.echo(f"Cancelled: {cancelled.reason}", err=True)
        return EXIT_CANCELLED
    click.echo("Succeeded." if elapsed is None else f"Succeeded in {elapsed:.2f} s.")
    return 0


def failure_line(failure: ProcessFailed) -> str:
    """Where the run failed and why: the step, or the hook and its (sub-)process."""
    if failure.hook is not None:
        # The error reads "on_completed of Outer > Inner raised ValueError: ..." (hook_failure).
        where, _, error = failure.error.partition(" raised ")
        return f"Failed in {where}: {error}"
    where = "the run" if failure.step is None else f"step {failure.step} ({failure.step_name})"
    return f"Failed at {where}: {failure.error}"


def progress_line(statuses: list[StepStatus]) -> str:
    """``[done/total]`` and the steps running now or waiting for a retry."""
    done = sum(1 for s in statuses if s.state is StepState.SUCCESS)
    running = [activity(s) for s in statuses if s.state in (StepState.STARTED, StepState.RETRY)]
    return f"[{done}/{len(statuses)}] " + (
        f"running: {', '.join(running)}" if running else "waiting"
    )


def activity(status: StepStatus) -> str:
    """A running step as the progress line shows it: name, path and which retry it is."""
    if status.state is StepState.RETRY:  # attempt ``attempts`` failed; the next one is a retry
        retry = f"waiting for retry {status.attempts} of {status.max_retries}"
    elif status.attempts > 1:
        retry = f"retry {status.attempts - 1} of {status.max_retries}"
    else:
        return f"{status.name} ({status.path})"
    return f"{status.name} ({status.path}, {retry})"


def summarize(statuses: list[StepStatus]) -> None:
    """A table of every step: path, name, state, attempts, duration, description.

    Once a resume ran steps again, a column says how many resumes ran each.
    """
    resumed = any(status.resumes for status in statuses)
    rows = [("path", "step", "state", "attempts", *(("resumes",) if resumed else ()))]
    rows[0] += ("duration", "description")
    for status in statuses:
        duration = "" if status.duration is None else f"{status.duration:.3f} s"
        resumes = (str(status.resumes),) if resumed else ()
        rows.append(
            (
                status.path,
                status.name,
                status.state.value,
                str(status.attempts),
                *resumes,
                duration,
                status.description or "",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@main.command()
@click.argument("definition")
@click.argument("arguments", nargs=-1)
@click.option("--option", "options", multiple=True, metavar="NAME=VALUE")
def show(definition: str, arguments: tuple[str, ...], options: tuple[str, ...]) -> None:
    """Print the tree DEFINITION builds into with NAME=VALUE arguments."""
    click.echo(build(definition, arguments, options).render())


@main.command()
@click.argument("definition", required=False)
@click.argument("arguments", nargs=-1)
@click.option("--option", "options", multiple=True, metavar="NAME=VALUE")
@click.option(
    "--format", "output", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid"
)
@click.option("--run", "run_id", help="Draw this run, each step coloured by its state.")
@click.option("--app", "app", metavar="MODULE:APP", help="The Celery app of --run.")
def graph(
    definition: str | None,
    arguments: tuple[str, ...],
    options: tuple[str, ...],
    output: str,
    run_id: str | None,
    app: str | None,
) -> None:
    """Print DEFINITION's process, or a run's, as a Mermaid flowchart, Graphviz DOT or SVG."""
    if run_id is None:
        if definition is None:
            fail("name a process (module:Definition) or a run (--run RUN_ID --app MODULE:APP)")
        process = build(definition, arguments, options)
        click.echo(picture(process, output))
        return
    if definition is not None or options:
        fail("--run draws a run with the arguments it was enqueued with: name no process")
    if app is None:
        fail("--run needs the run's Celery app: --app MODULE:APP")
    backend = load_backend(app)
    with connection_errors(backend):
        try:
            handle = backend.run(run_id)
            click.echo(picture(handle, output))
        except TasktronautError as error:
            fail(str(error), EXIT_FAILED)


def picture(drawing: Process | Run, output: str) -> str:
    """A process's or a run's picture in the ``--format`` asked for."""
    draw = {"mermaid": drawing.to_mermaid, "dot": drawing.to_dot, "svg": drawing.to_svg}[output]
    return draw()


@main.command()
@click.argument("run_id")
@click.option("--app", "app", required=True, metavar="MODULE:APP")
@click.option("--watch", "follow_run", is_flag=True, help="Follow the run until it ends.")
def status(run_id: str, app: str, follow_run: bool) -> None:
    """Show the state and steps of run RUN_ID; exit like ``run`` once it has ended."""
    backend = load_backend(app)
    with connection_errors(backend):
        try:
            handle = backend.run(run_id)
        except TasktronautError as error:
            fail(str(error), EXIT_FAILED)
        record = handle.record
        resumed = f" (resumed {times(record.resumes)})" if record.resumes else ""
        click.echo(f"Run {run_id}: {record.state.value}{resumed}")
        if follow_run:
            try:
                watch(handle, None)
            except KeyboardInterrupt:
                click.echo(f"Interrupted: no longer following run {run_id}.", err=True)
                sys.exit(EXIT_INTERRUPTED)
        elif record.settled_at is None:  # under way, or its end's hooks are firing
            summarize(handle.steps())
            sys.exit(_ENDED_EXIT_CODES.get(record.state, 0))
        sys.exit(conclude(handle, None))


@main.command()
@click.argument("run_id")
@click.option("--app", "app", required=True, metavar="MODULE:APP")
def cancel(run_id: str, app: str) -> None:
    """Cancel run RUN_ID: steps that have not started never will."""
    backend = load_backend(app)
    with connection_errors(backend):
        try:
            handle = backend.run(run_id)
        except TasktronautError as error:
            fail(str(error), EXIT_FAILED)
        if handle.cancel():
            click.echo(f"Run {run_id} cancelled.")
        else:
            click.echo(f"Run {run_id} had already ended: {handle.state.value}.")


@main.command()
@click.argument("run_id")
@click.option("--app", "app", required=True, metavar="MODULE:APP")
@click.option("--wait", "follow_run", is_flag=True, help="Follow the run until it ends.")
@click.option("--force", is_flag=True, help="Resume even if the definition changed since.")
def retry(run_id: str, app: str, follow_run: bool, force: bool) -> None:
    """Resume the failed or cancelled run RUN_ID where it stopped; with --wait, exit like ``run``.

    Steps that succeeded are not run again.
    """
    backend = load_backend(app)
    with connection_errors(backend):
        try:
            handle = backend.run(run_id)
            to_run = sum(1 for status in handle.steps() if status.state is not StepState.SUCCESS)
            handle.retry(force=force)
        except TasktronautError as error:  # refused, or the broker did not take it
            fail(str(error), EXIT_FAILED)
        resumes = handle.record.resumes
        click.echo(f"Run {run_id} resumed (resume {resumes}): {steps(to_run)} to run.")
        if not follow_run:
            return
        started = time.monotonic()
        try:
            watch(handle, None)
        except KeyboardInterrupt:
            click.echo(f"Interrupted: no longer following run {run_id}.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(conclude(handle, time.monotonic() - started))


@main.command()
@click.option("--app", "app", required=True, metavar="MODULE:APP")
@click.option("--state", help="Only runs in this state (pending, running, success, failure, ...).")
@click.option("--definition", help="Only runs of this top-level definition (its class name).")
@click.option("--since", metavar="AGE", help="Only runs created within this age (90s, 1h, 7d).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def runs(
    app: str, state: str | None, definition: str | None, since: str | None, limit: int
) -> None:
    """List the runs kept in the app's result backend, newest first."""
    backend = load_backend(app)
    with connection_errors(backend):
        try:
            age = None if since is None else listing.parse_age(since)
            found = backend.runs(definition=definition, state=state, since=age, limit=limit)
        except ValueError as error:
            fail(str(error))
        rows = [listing.row(handle.id, handle.listed) for handle in found if handle.listed]
    for line in listing.table(rows):
        click.echo(line)


@main.command()
@click.option("--app", "app", required=True, metavar="MODULE:APP")
@click.option("--older-than", "older_than", required=True, metavar="AGE", help="e.g. 7d, 12h.")
@click.option("--state", help="Only runs that ended in this state (success, failure, cancelled).")
def prune(app: str, older_than: str, state: str | None) -> None:
    """Forget the ended runs created longer than AGE ago; runs under way are kept."""
    backend = load_backend(app)
    with connection_errors(backend):
        try:
            pruned = backend.prune(listing.parse_age(older_than), state=state)
        except ValueError as error:
            fail(str(error))
    click.echo(f"Pruned {pruned} run{'' if pruned == 1 else 's'}.")
