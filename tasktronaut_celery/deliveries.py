"""Whether a delivered message runs: its run's state, duplicates and redeliveries.

Before anything runs, the run's state is read: once a run has failed or been
cancelled, every message still queued is skipped, which also stops its chain.

A step starts by swapping its stored record for a STARTED one
(compare-and-set), so of two messages for the same step only one runs it. A
message the broker delivers again after its worker was lost runs the step
again, up to ``max_deliveries`` times; the next delivery fails the run with
:class:`~tasktronaut_celery.StepLostError`, so a step that kills its worker
every time cannot keep a run going forever. Any other second message for a
started step (a duplicate sent by a repeated predecessor, or a stale
attempt's) is ignored, so duplicates do not ripple through the run.

The verdict is a value, :class:`Admission`; the runner acts on it.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import StepLostError
from .store import RunState, StepState

if TYPE_CHECKING:
    from celery import Celery, Task

    from .store import RunRecord, StepRecord

logger = logging.getLogger("tasktronaut.celery")

DEFAULT_MAX_DELIVERIES = 3

# Transports that tell a message delivered again (after its worker was lost)
# from a new one; on others every delivery of a started step counts as a
# redelivery. The in-memory transport never redelivers.
_FLAGGING_TRANSPORTS = frozenset({"amqp", "redis", "memory"})


class Verdict(enum.Enum):
    """What becomes of a delivered message."""

    RUN = "run"
    """Run it."""
    ENDED = "ended"
    """Skip it: its run has ended."""
    DUPLICATE = "duplicate"
    """Ignore it: another message does, or did, what it asks."""
    PASS_ON = "pass on"
    """Its step succeeded before: do not run it again, only complete and send on what follows."""
    LOST = "lost"
    """Its step's worker was lost too often: fail the step."""
    STALE = "stale"
    """Skip it: it was sent before the run was resumed, and the resume sends its own."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict on a delivered message, with what the runner needs to act on it.

    ``running``: the run is RUNNING already. ``deliveries``: which delivery of
    its attempt a step's message is. ``settle``: the state of an ENDED run
    whose end hooks have not fired, reached by the redelivered message of the
    worker that died while ending it. ``lost``: why a LOST step fails.
    """

    verdict: Verdict
    running: bool = False
    deliveries: int = 1
    settle: RunState | None = None
    lost: StepLostError | None = None


class Deliveries:
    """Admits the messages delivered to one app's workers."""

    def __init__(self, app: Celery, max_deliveries: int = DEFAULT_MAX_DELIVERIES) -> None:
        self._max_deliveries = max_deliveries
        driver = app.connection_for_write().transport.driver_type
        self._flags_redeliveries = driver in _FLAGGING_TRANSPORTS

    def redelivered(self, task: Task) -> bool:
        """Whether the broker delivers this message again (its worker was lost, or cut off)."""
        if not self._flags_redeliveries:
            return True
        return bool((task.request.delivery_info or {}).get("redelivered"))

    def admit(
        self, run_id: str, record: RunRecord, what: str, redelivered: bool, resume: int = 0
    ) -> Admission:
        """Whether ``what`` (a control message) runs: RUN while the run is under way, else ENDED.

        ``resume`` is the resume of the run the message belongs to: one left
        over from before the run's latest resume is STALE.
        """
        if resume != record.resumes:
            logger.info("run %s: skipping %s, sent before resume %d", run_id, what, record.resumes)
            return Admission(Verdict.STALE)
        if not record.state.finished:
            return Admission(Verdict.RUN, running=record.state is RunState.RUNNING)
        logger.info("run %s is %s; skipping %s", run_id, record.state.value, what)
        owed = record.settled_at is None and redelivered
        return Admission(Verdict.ENDED, settle=record.state if owed else None)

    def admit_start(self, run_id: str, record: RunRecord, redelivered: bool) -> Admission:
        """Whether a run's start message runs; a second one is sent again only if redelivered.

        A start message for a run under way runs again only if the broker
        redelivers it (its worker died while sending); another is a duplicate.
        """
        admission = self.admit(run_id, record, "start", redelivered)
        if admission.running and not redelivered:
            logger.info("run %s has started already; ignoring a duplicate start", run_id)
            return Admission(Verdict.DUPLICATE)
        return admission

    def admit_step(
        self,
        run_id: str,
        path: str,
        run: RunRecord,
        previous: StepRecord | None,
        attempt: int,
        redelivered: bool,
        resume: int = 0,
    ) -> Admission:
        """Whether attempt ``attempt`` of the step at ``path`` runs, given its ``previous`` record.

        A step a resume left PENDING runs as if it had no record.
        """
        admission = self.admit(run_id, run, f"step {path}", redelivered, resume)
        if admission.verdict is not Verdict.RUN or previous is None or not previous.started:
            return admission
        running = admission.running
        if previous.state is StepState.SUCCESS:
            logger.info("run %s: step %s already succeeded; not running it again", run_id, path)
            return Admission(Verdict.PASS_ON, running)
        if previous.attempts < attempt:
            return admission  # a retry's message
        if previous.attempts > attempt or not redelivered:
            logger.info(
                "run %s: step %s attempt %d has started already; ignoring a duplicate message",
                run_id, path, previous.attempts,
            )  # fmt: skip
            return Admission(Verdict.DUPLICATE, running)
        if previous.deliveries >= self._max_deliveries:
            lost = StepLostError(
                f"the worker running step {path} was lost {previous.deliveries} times "
                "(killed, out of memory, or cut off from the broker); not running it again"
            )
            return Admission(Verdict.LOST, running, lost=lost)
        logger.warning(
            "run %s: step %s delivered again after its worker was lost (delivery %d of %d)",
            run_id, path, previous.deliveries + 1, self._max_deliveries,
        )  # fmt: skip
        return Admission(Verdict.RUN, running, deliveries=previous.deliveries + 1)
