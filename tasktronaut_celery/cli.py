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
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import click
from celery import Celery

from tasktronaut.definition import ProcessDefinition
from tasktronaut.errors import TasktronautError
from tasktronaut.process import Process

from .backend import CeleryBackend
from .embedded import EmbeddedBackend
from .errors import CONNECTION_ERRORS, BrokerUnavailableError, ProcessCancelled, ProcessFailed
from .run import Run, StepStatus
from .store import StepState

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` as one paragraph on stderr and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def load_object(reference: str, what: str) -> Any:
    """The object named by ``module:attribute`` (or ``module`` for apps), imported."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `celery -A`, find modules where you stand
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        fail(f"cannot import module {module_name!r} for the {what} {reference!r}: {error}")
    names = [attribute] if attribute else ["backend", "app", "celery"]
    for name in names:
        if hasattr(module, name):
            return getattr(module, name)
    fail(f"module {module_name!r} has no {' or '.join(repr(n) for n in names)} for the {what}")


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
        return definition.build(identifier=identifier, options=flags, **kwargs)
    except TasktronautError as error:
        fail(str(error))


def load_backend(reference: str) -> CeleryBackend:
    """The backend for ``--app``: a ``CeleryBackend``, or one made for a ``Celery`` app."""
    target = load_object(reference, "Celery app")
    if isinstance(target, CeleryBackend):
        return target
    if isinstance(target, Celery):
        try:
            return CeleryBackend(target)
        except TasktronautError as error:
            fail(str(error))
    fail(f"{reference!r} is {target!r}, neither a Celery app nor a CeleryBackend")


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
        with EmbeddedBackend() as embedded:
            follow(embedded, process, timeout)
    else:
        follow(load_backend(app), process, timeout)


def follow(backend: CeleryBackend, process: Process, timeout: float | None) -> NoReturn:
    """Enqueue ``process``, show its progress, then its summary; exit with its outcome."""
    started = time.monotonic()
    with connection_errors(backend):
        try:
            handle = process.enqueue(backend)
        except BrokerUnavailableError as error:
            fail(str(error), EXIT_FAILED)
        except TasktronautError as error:
            fail(str(error))
        click.echo(f"Run {handle.id}: {process.definition.__qualname__}, {len(process)} steps")
        try:
            code = watch(handle, started, timeout)
        except KeyboardInterrupt:
            handle.cancel()
            click.echo("Interrupted: the run was cancelled.", err=True)
            code = EXIT_INTERRUPTED
    sys.exit(code)


def watch(handle: Run, started: float, timeout: float | None) -> int:
    """Print progress lines until the run settles; return the exit code."""
    last = ""
    while True:
        steps = handle.steps()
        line = progress_line(steps)
        if line != last:
            click.echo(line)
            last = line
        try:
            handle.wait(timeout=0.2)
            break
        except TimeoutError:
            if timeout is not None and time.monotonic() - started > timeout:
                click.echo(f"Still {handle.state.value} after {timeout} s; not waiting.", err=True)
                return EXIT_FAILED
        except ProcessFailed as failure:
            summarize(handle.steps())
            click.echo(
                f"Failed at step {failure.step} ({failure.step_name}): {failure.error}", err=True
            )
            return EXIT_FAILED
        except ProcessCancelled as cancelled:
            summarize(handle.steps())
            click.echo(f"Cancelled: {cancelled.reason}", err=True)
            return EXIT_CANCELLED
    summarize(handle.steps())
    click.echo(f"Succeeded in {time.monotonic() - started:.2f} s.")
    return 0


def progress_line(steps: list[StepStatus]) -> str:
    """``[done/total]`` and the steps running now."""
    done = sum(1 for s in steps if s.state is StepState.SUCCESS)
    running = [
        f"{s.name} ({s.path})" for s in steps if s.state in (StepState.STARTED, StepState.RETRY)
    ]
    return f"[{done}/{len(steps)}] " + (f"running: {', '.join(running)}" if running else "waiting")


def summarize(steps: list[StepStatus]) -> None:
    """A table of every step: path, name, state, attempts, duration."""
    rows = [("path", "step", "state", "attempts", "duration")]
    for status in steps:
        duration = "" if status.duration is None else f"{status.duration:.3f} s"
        rows.append((status.path, status.name, status.state.value, str(status.attempts), duration))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
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
@click.argument("definition")
@click.argument("arguments", nargs=-1)
@click.option("--option", "options", multiple=True, metavar="NAME=VALUE")
@click.option("--format", "output", type=click.Choice(["mermaid", "dot"]), default="mermaid")
def graph(
    definition: str, arguments: tuple[str, ...], options: tuple[str, ...], output: str
) -> None:
    """Print the process as a Mermaid flowchart (or Graphviz DOT)."""
    process = build(definition, arguments, options)
    click.echo(process.to_mermaid() if output == "mermaid" else process.to_dot())


@main.command()
@click.argument("run_id")
@click.option("--app", "app", required=True, metavar="MODULE:APP")
def status(run_id: str, app: str) -> None:
    """Show the state and steps of run RUN_ID."""
    backend = load_backend(app)
    with connection_errors(backend):
        try:
            handle = backend.run(run_id)
        except TasktronautError as error:
            fail(str(error), EXIT_FAILED)
        record = handle.record
        click.echo(f"Run {run_id}: {record.state.value}")
        if record.error:
            click.echo(f"  at step {record.step}: {record.error}")
        summarize(handle.steps())


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
