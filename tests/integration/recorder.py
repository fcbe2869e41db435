"""Records what workers do, in Redis, so tests can check order, overlap and hook counts.

Installing the recorder wraps ``ProcessDefinition``'s hooks and ``around_task``
(the base-class implementations every definition inherits), so the user
guide's own example classes are observed unchanged, in-process or in a
``celery worker`` subprocess alike.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis

from tasktronaut import Context, ProcessDefinition

_installed: dict[str, Any] = {}


def _key(run_id: str) -> str:
    return f"test-events:{run_id}"


class Recorder:
    """Appends and reads the events of each run."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def record(self, run_id: str, **event: Any) -> None:
        event.update(
            pid=os.getpid(), ppid=os.getppid(), thread=threading.get_ident(), at=time.time()
        )
        self.client.rpush(_key(run_id), json.dumps(event, default=repr))
        self.client.expire(_key(run_id), 3600)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.client.lrange(_key(run_id), 0, -1)]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """Finished step attempts in the order they ended."""
        return [e for e in self.events(run_id) if e["kind"] == "step"]

    def hooks(self, run_id: str, hook: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in self.events(run_id) if e["kind"] == "hook" and hook in (None, e["hook"])
        ]


def typed(arguments: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each argument as ``[type name, value]``: how a step's ``context.kwargs`` are recorded."""
    return {name: [type(value).__name__, value] for name, value in arguments.items()}


_HOOKS = ("on_started", "on_completed", "on_failed", "on_cancelled", "around_task")


def uninstall() -> None:
    """Give ``ProcessDefinition`` its own hooks back."""
    originals = _installed.pop("originals", {})
    for name, original in originals.items():
        setattr(ProcessDefinition, name, original)
    _installed.clear()


def install(url: str) -> Recorder:
    """Observe every process definition in this Python process, until :func:`uninstall`."""
    if _installed:
        return _installed["recorder"]  # type: ignore[no-any-return]
    recorder = Recorder(url)
    _installed["recorder"] = recorder
    _installed["originals"] = {name: vars(ProcessDefinition)[name] for name in _HOOKS}

    def hook(name: str) -> Any:
        def record_hook(self: ProcessDefinition, identifier: str, *args: Any) -> None:
            extra = {"step": args[0], "error": repr(args[1])} if args else {}
            _installed["recorder"].record(
                identifier, kind="hook", hook=name, process=type(self).__qualname__, **extra
            )

        return record_hook

    for name in ("on_started", "on_completed", "on_failed", "on_cancelled"):
        setattr(ProcessDefinition, name, hook(name))

    @contextmanager
    def around_task(
        self: ProcessDefinition,
        identifier: str,
        step: str,
        description: str | None,
        context: Context,
    ) -> Iterator[None]:
        start = time.time()
        outcome = "ok"
        try:
            yield
        except BaseException as error:
            outcome = f"{type(error).__name__}: {error}"
            raise
        finally:
            _installed["recorder"].record(
                identifier,
                kind="step",
                process_id=context.process_id,
                path=context.path,
                name=f"{type(self).__qualname__}.{step}",
                description=description,
                attempt=context.attempt,
                start=start,
                end=time.time(),
                outcome=outcome,
                arguments=typed(context.kwargs),
            )

    ProcessDefinition.around_task = around_task  # type: ignore[method-assign]
    return recorder
