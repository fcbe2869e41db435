"""Helpers shared by the test tiers: services that must answer, waiting, subprocesses.

The services must answer: on CI (``CI`` set) a missing one fails the run; on a
laptop without them the tests that need them are skipped.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from celery import Celery
from kombu import Connection
from kombu.exceptions import OperationalError

from tests.services import answers

T = TypeVar("T")


def unavailable(message: str) -> None:
    """Skip the test, or fail it on CI, where every service and package must be there."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require(url: str, name: str) -> None:
    """Skip (fail on CI) unless the service at ``url`` answers."""
    if not answers(url):
        unavailable(f"{name} does not answer at {url}")


def require_modules(*names: str) -> None:
    """Skip (fail on CI) unless every module in ``names`` can be imported."""
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        unavailable(f"not installed: {', '.join(missing)}")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy and return that, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def empty_queues(connection: Connection, queues: list[str]) -> None:
    """Declare ``queues`` (durable) on ``connection``'s broker and purge them."""
    for queue in queues:
        connection.default_channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        connection.default_channel.queue_purge(queue)


@contextmanager
def running(
    command: list[str], cwd: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` for the duration of the block, then SIGTERM it and wait for it to exit."""
    process = subprocess.Popen(command, cwd=cwd, env=env)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def celery_worker(
    app: str, name: str, cwd: Path, env: dict[str, str], broker: str, *options: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A app worker -P prefork -c 2 -E`` in ``cwd``, once it answers pings."""
    command = [
        sys.executable, "-m", "celery", "-A", app, "worker", "-P", "prefork", "-c", "2", "-E",
        "-n", name, "--loglevel", "INFO", "--without-gossip", "--without-mingle", *options,
    ]  # fmt: skip
    with running(command, cwd, env) as worker:
        client = Celery("ping", broker=broker)

        def answered() -> bool:
            assert worker.poll() is None, f"the worker exited while starting ({worker.returncode})"
            try:
                return bool(client.control.ping(destination=[name], timeout=1.0))
            except (OSError, OperationalError):  # kombu pooled a connection to a restarted broker
                return False

        try:
            wait_until(answered, 60, f"the worker {name} answering pings")
        finally:
            client.close()
        yield worker


# Flower's HTTP API answers only with authentication (or FLOWER_UNAUTHENTICATED_API).
FLOWER_CREDENTIALS = "tasktronaut:example"


@contextmanager
def flower(
    app: str, cwd: Path, env: dict[str, str], worker: str
) -> Iterator[Callable[[str], Any]]:
    """``celery -A app flower``, once it receives ``worker``'s events; yields a JSON GET."""
    require_modules("flower")
    port = free_port()
    command = [
        sys.executable, "-m", "celery", "-A", app, "flower",
        f"--port={port}", "--address=127.0.0.1", f"--basic-auth={FLOWER_CREDENTIALS}",
    ]  # fmt: skip
    authorization = "Basic " + base64.b64encode(FLOWER_CREDENTIALS.encode()).decode()

    def get(path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": authorization}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    with running(command, cwd, env) as process:

        def sees_the_worker() -> bool:
            assert process.poll() is None, "flower exited while starting"
            try:
                workers = get("/workers?json=1")["data"]
            except OSError:  # not listening yet
                return False
            return any(each["hostname"] == worker for each in workers)

        # The worker's heartbeat reaching Flower shows Flower is consuming its events.
        wait_until(sees_the_worker, 60, "Flower receiving the worker's events")
        yield get


def tasktronaut_command(
    *arguments: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``tasktronaut`` command in a process of its own, as a user types it (its real stderr).

    The repository stays importable from ``cwd``, as it is from the tests' own directory.
    """
    return subprocess.run(
        [sys.executable, "-c", "from tasktronaut_celery.cli import main; main()", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
