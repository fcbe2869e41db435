"""``EmbeddedBackend``: a Celery app and worker inside this Python process.

Nothing to install or start: the broker is kombu's in-memory transport, results
live in an in-process cache, and a worker with a thread pool consumes in a
background thread. It is the very same ``CeleryBackend`` with the same runner
and semantics as on a real broker, so a process that works here works on your
workers; it is meant for demos, scripts and tests, not for production (all
state is gone when the process exits).
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from celery import Celery
from celery.concurrency.thread import TaskPool
from celery.worker import WorkController

from .backend import DEFAULT_CANVAS_LIMIT, CeleryBackend

STARTUP_TIMEOUT = 30.0


class _AppThreadPool(TaskPool):  # type: ignore[misc]
    """Celery's thread pool, with the worker's app current in every pool thread.

    Celery finds a task's app through ``current_app``; making the app current in
    its own threads, rather than the default app of the whole process, lets
    several embedded backends and the user's own app live side by side.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unused: ThreadPoolExecutor = vars(self)["executor"]  # made by Celery, no thread yet
        unused.shutdown()
        self.executor = ThreadPoolExecutor(
            max_workers=self.limit, initializer=self.app.set_current
        )


class _ThreadWorker(WorkController):  # type: ignore[misc]
    """A worker that says when its consumer is ready to take messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


class EmbeddedBackend(CeleryBackend):
    """A ``CeleryBackend`` on an in-process app and worker; use it as a context manager.

    ``concurrency`` is the number of worker threads, so concurrent steps really
    overlap. ``polling_interval`` is how often the in-memory transport looks
    for messages: kombu's default of one second would make every step slow.
    """

    def __init__(
        self,
        *,
        concurrency: int = 4,
        polling_interval: float = 0.005,
        canvas_limit: int | None = DEFAULT_CANVAS_LIMIT,
    ) -> None:
        name = f"tasktronaut-embedded-{uuid.uuid4().hex[:8]}"
        app = Celery(name, broker="memory://localhost/", backend="cache+memory://")
        app.conf.update(
            broker_transport_options={"polling_interval": polling_interval},
            task_default_queue=name,  # embedded apps in one process must not share a queue
            worker_enable_remote_control=False,
            worker_hijack_root_logger=False,
            result_expires=None,
        )
        super().__init__(app, canvas_limit=canvas_limit)
        self._concurrency = concurrency
        self._worker: _ThreadWorker | None = None

    def start(self) -> EmbeddedBackend:
        """Start the worker thread and return once it consumes messages.

        The app is made current in the worker's threads only, so several
        embedded backends (and your own Celery app) can share one process.
        """
        if self._worker is not None:
            return self
        worker = _ThreadWorker(
            app=self.app,
            pool=_AppThreadPool,
            concurrency=self._concurrency,
            hostname=f"{self.app.main}@localhost",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="WARNING",
        )
        threading.Thread(
            target=self._serve, args=(worker,), name=self.app.main, daemon=True
        ).start()
        if not worker.ready.wait(STARTUP_TIMEOUT):
            raise RuntimeError(f"the embedded worker did not start within {STARTUP_TIMEOUT} s")
        self._worker = worker
        return self

    def _serve(self, worker: _ThreadWorker) -> None:
        self.app.set_current()  # the consumer runs here, and so does the solo pool
        worker.start()

    def stop(self) -> None:
        """Stop the worker, letting the steps it is running finish.

        When this returns the steps have ended and the worker's pool is shut
        down. Its consumer thread (a daemon) is not waited for: it ends at
        its next poll of the in-memory transport, up to two seconds later,
        having nothing left to do.
        """
        if self._worker is None:
            return
        self._worker.stop(in_sighandler=False)
        self._worker = None

    def __enter__(self) -> EmbeddedBackend:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
