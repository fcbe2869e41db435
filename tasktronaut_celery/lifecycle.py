"""The hooks of a run's processes, each fired once however many workers race for it.

Each hook is claimed in the run store before it is called (a
:class:`~tasktronaut_celery.claims.Claim`),
so it fires once per process per run. ``on_started`` has a claim of its own;
the three end hooks share one claim per process (``Claim.ended``), so each
process gets at most one of ``on_completed``, ``on_failed`` and
``on_cancelled``. ``on_started`` and a process's last step claim theirs only
while the run is under way, and the run's end fires its hook for every process
that started and has not ended: so every process that started gets exactly one
end hook. A client's cancel loses to the top-level process's completion once
that is claimed.

*Settling* a run means one thing here: firing the end hooks an ended run still
owes (``on_cancelled`` after a cancel, ``on_failed`` after a failure), then
marking it settled in the run store, so nobody fires them again, and letting
go of what the run held (its concurrency slot, handed to the next run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from tasktronaut import paths
from tasktronaut.backend import Hook, ProcessDefinition, call_hook, resolve_definition
from tasktronaut.errors import ProcessError

from .claims import Claim
from .errors import WorkerCodeMismatchError, describe_error, hook_failure
from .protocol import RunEnded
from .store import RunState, StepState, now

if TYPE_CHECKING:
    from .plan import Plan
    from .store import RunRecord, RunStore, StepRecord

logger = logging.getLogger("tasktronaut.celery")


class HookFailed(Exception):
    """``on_started`` or ``on_completed`` of the process at ``process`` raised ``error``."""

    def __init__(self, process: str, hook: Hook, error: Exception) -> None:
        super().__init__(process, hook, error)
        self.process = process
        self.hook = hook
        self.error = error


class Lifecycle:
    """The hooks and the ending of one run on this worker process; kept with its plan.

    It remembers the claims it has seen won, so a hook that has fired costs
    no further trip to the run store.
    """

    def __init__(
        self, store: RunStore, plan: Plan, release: Callable[[], None] = lambda: None
    ) -> None:
        self._store = store
        self._plan = plan
        self._run_id = plan.run_id
        self._release = release
        self._claimed: set[Claim] = set()

    def start_processes(self, path: str) -> None:
        """Fire ``on_started`` of each process containing ``path`` not yet started, outermost first.

        Raises :class:`~tasktronaut_celery.protocol.RunEnded` if the run has
        ended: a process does not start once its end hooks may have been fired.
        """
        for process in reversed(self._plan.lineage(path)):
            self._fire_once("on_started", process, self._run_id)

    def complete(self, completes: tuple[str, ...]) -> None:
        """Fire ``on_completed`` of the processes ``completes``; the root's ends the run SUCCESS.

        Each completion that returned is recorded (``Claim.completed``), so a
        resume of the run knows which processes are done.
        """
        for process in completes:
            if self._fire_once("on_completed", process, self._run_id):
                self._store.claim(self._run_id, Claim.completed(process).marker)
            if process == paths.ROOT and self._store.finish(
                self._run_id, RunState.SUCCESS, settled=True
            ):
                self.release()

    def guard(self, path: str, work: Callable[[], None]) -> None:
        """Run a control message's ``work``; if a hook in it raises, the run fails there."""
        plan = self._plan
        try:
            work()
        except RunEnded:
            raise
        except HookFailed as failed:
            self.fail_hook(failed)
        except Exception as error:  # e.g. a definition this worker does not know
            self.fail(path, hook_name(error), error)
            hidden = plan.redactor.exception(error)  # what Celery logs and sends in events
            if hidden is error:
                raise
            raise hidden from None

    def fail_hook(self, failed: HookFailed) -> NoReturn:
        """Fail the run at the process whose ``on_started`` or ``on_completed`` raised.

        The run record names the process's path and says which hook raised;
        ``on_failed`` is told ``<on_started>`` or ``<on_completed>`` as the step.
        """
        plan = self._plan
        where = " > ".join(plan.processes[p].name for p in reversed(plan.lineage(failed.process)))
        description = hook_failure(failed.hook, where, describe_error(failed.error, plan.redactor))
        self.fail(failed.process, f"<{failed.hook}>", failed.error, description)
        raise plan.redactor.exception(failed.error) from None  # what Celery logs and sends

    def fail(self, path: str, step: str, error: Exception, description: str | None = None) -> None:
        """End the run FAILURE at ``path`` and settle it: ``on_failed`` of each process there.

        ``description`` is the error as the run record shows it (by default
        ``error`` described). Nothing happens if the run has ended already.
        """
        if description is None:
            description = describe_error(error, self._plan.redactor)
        if not self._store.finish(self._run_id, RunState.FAILURE, step=path, error=description):
            return
        try:
            self.end_retries()
            self.fire_ended(path, "on_failed", step, error)
        finally:
            self._settled()

    def fail_unrunnable(self, path: str, mismatch: str) -> NoReturn:
        """Fail the run, before anything of it runs here: this worker's code cannot run it.

        ``mismatch`` says what of the plan the code lacks. The processes at
        ``path`` are told with ``on_failed``; no step is marked.
        """
        error = WorkerCodeMismatchError(mismatch)
        logger.error("run %s: %s", self._run_id, mismatch)
        description = describe_error(error, self._plan.redactor)
        if self._store.finish(self._run_id, RunState.FAILURE, error=description):
            try:
                self.fire_ended(path, "on_failed", "<worker code>", error)
            finally:
                self._settled()
        raise error

    def settle(self, state: RunState) -> None:
        """Fire the end hooks that the ended run's ``state`` calls for and have not fired.

        The run is marked settled even if a hook raised (hooks' errors are logged).
        """
        try:
            self.end_retries()
            record = self._store.record(self._run_id)
            path = (record.step if record else None) or paths.ROOT
            if state is RunState.CANCELLED:
                self.fire_ended(path, "on_cancelled")
            elif state is RunState.FAILURE:
                step = self._plan.steps.get(path)
                name = step.method if step else f"<{path or 'start'}>"
                error = ProcessError((record.error if record else None) or "the run failed")
                self.fire_ended(path, "on_failed", name, error)
        finally:
            self._settled()

    def release(self) -> None:
        """Let go of what the ended run holds: its concurrency slot, handed to the next run.

        Done as the run settles, and again (it is idempotent) by any message
        of the run that arrives once it has ended, in case the worker that
        settled it died before it let go.
        """
        self._release()

    def _settled(self) -> None:
        """Let go of what the run held, then mark it settled."""
        try:
            self.release()
        finally:
            self._store.settle(self._run_id)

    def fire_ended(self, path: str, hook: Hook, *args: Any) -> None:
        """Fire the end ``hook`` once for each process the run's end leaves unended.

        These are the processes from ``path`` (where the run failed or was
        cancelled) up to the root, and every other process that started and
        has not ended: a sub-process still running, or whose next steps will
        never start. Each process's hook fires after those of the processes
        inside it; ``path``'s own processes go before their siblings. The
        processes share their ``Claim.ended`` with ``on_completed``, so a
        process's last step finishing meanwhile does not end it twice. A hook
        that raises is logged, and the others still fire.
        """
        claims = [Claim.parse(marker) for marker in self._store.claimed(self._run_id)]
        started = {c.subject for c in claims if c is not None and c.kind == "started"}
        ended = {c.subject for c in claims if c is not None and c.kind == "ended"}
        lineage = self._plan.lineage(path)
        unended = (started - ended).difference(lineage)
        for outer in lineage:
            inside = sorted((p for p in unended if paths.within(p, outer)), key=_innermost_first)
            unended.difference_update(inside)
            for process in (*inside, outer):
                try:
                    self._fire_once(hook, process, self._run_id, *args)
                except Exception:
                    name = self._plan.processes[process].name
                    logger.exception("run %s: %s of %s failed", self._run_id, hook, name)

    def _fire_once(self, hook: Hook, process: str, *args: Any) -> bool:
        """Call ``hook`` of ``process`` if this call wins its claim in the run store; ``True`` if so.

        ``on_started`` has its own claim; the end hooks share the process's
        ``Claim.ended``. ``on_started`` and ``on_completed`` are claimed only
        while the run is under way, in the same store operation that checks
        it: a step that finishes after a cancel or a failure completes nothing,
        and a process reached after it does not start (this raises
        :class:`~tasktronaut_celery.protocol.RunEnded`), so every process that
        started is among those the run's end finds started. A raising
        ``on_started`` or ``on_completed`` raises :class:`HookFailed`.
        """
        claim = Claim.started(process) if hook == "on_started" else Claim.ended(process)
        if claim in self._claimed:
            return False  # this worker process has seen it claimed: no need to ask the store
        under_way_only = hook in ("on_started", "on_completed")
        if not self._store.claim(self._run_id, claim.marker, unless_ended=under_way_only):
            if hook == "on_started":
                record = self._store.record(self._run_id)
                if record is None or record.state.finished:
                    raise RunEnded()
            if hook != "on_completed":  # a completion that lost to the run's end left it unclaimed
                self._claimed.add(claim)
            return False
        self._claimed.add(claim)
        definition = self.definition(process)
        try:
            call_hook(definition, hook, *args, redactor=self._plan.redactor)
        except Exception as error:
            raise HookFailed(process, hook, error) from error
        return True

    def definition(self, process: str) -> type[ProcessDefinition]:
        """The definition of the process at ``process``, as this worker imported it."""
        return resolve_definition(self._plan.processes[process].definition)

    def end_retries(self) -> None:
        """End the steps waiting for a retry: the run has ended, so their retry never runs.

        Steps running on other workers are left to record their own end.
        """
        record = self._store.record(self._run_id)
        if record is None:
            return
        for path, step in self._store.steps(self._run_id).items():
            self.end_retry(path, step, record)

    def end_retry(self, path: str, step: StepRecord, run: RunRecord) -> None:
        """Record the step at ``path`` CANCELLED if it waits for a retry the ended ``run`` skips."""
        if step.state is not StepState.RETRY:
            return
        plan = self._plan
        if run.state is RunState.CANCELLED:
            why = "the run was cancelled"
        elif run.step is not None and run.step in plan.steps:
            why = f"the run failed at step {run.step} ({plan.step_name(run.step)})"
        else:
            why = f"the run failed ({run.error})"
        reason = f"not retried: {why}; last attempt: {step.error}"
        ended = step.moved_to(StepState.CANCELLED, finished_at=now(), error=reason)
        self._store.put_step_if(self._run_id, path, ended, step)


def _innermost_first(path: str) -> tuple[int, int, str]:
    return (-paths.depth(path), -len(path), path)


def hook_name(error: Exception) -> str:
    """What ``on_failed`` is told failed when a hook, not a step, raised."""
    return f"<hook: {type(error).__name__}>"
