"""Keeping a definition's concurrency limit on Celery: a slot per run, taken and handed on.

A client takes a slot for a run it has just stored (:func:`take_slot`), or
for an ended run it is about to retry (:func:`take_slot_again`): with
one, the run's opening message goes out at once. Without, the definition's
policy decides: ``queue`` leaves the run PENDING in the key's queue, and no
message is sent until a slot is handed to it; ``reject`` forgets the run and
raises :class:`~tasktronaut_celery.ConcurrencyLimitError`; ``skip`` ends the
run CANCELLED, saying why, and logs it. Whoever settles a run frees its slot
(:func:`free_slot`) and sends the opening message of each waiting run that got
one. The slots themselves are :mod:`~tasktronaut_celery.slots`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tasktronaut.concurrency import ConcurrencyPolicy

from . import slots
from .dispatch import opening_signature
from .errors import ConcurrencyLimitError, RetryRefusedError
from .plan import decode_plan
from .store import RunState

if TYPE_CHECKING:
    from celery import Celery

    from .plan import Plan
    from .store import RunStore

logger = logging.getLogger("tasktronaut.celery")


def take_slot(app: Celery, store: RunStore, plan: Plan, control_queue: str | None) -> bool:
    """Take a slot for the stored run of ``plan``; ``True`` if its opening message is to go now.

    Without a free slot, the run waits (``queue``), is refused and forgotten
    (``reject``: raises :class:`ConcurrencyLimitError`) or ends CANCELLED
    (``skip``). Waiting runs that got a slot on the way are sent.
    """
    limit = plan.concurrency
    if limit is None:
        return True
    policy = limit.policy
    taking = slots.take(store, plan.run_id, limit, wait=policy is ConcurrencyPolicy.QUEUE)
    hand_on(app, store, control_queue, taking.handed_on)
    if taking.granted:
        return True
    run = f"{plan.root.name} run {plan.run_id}"
    held = held_by(taking.holders)
    if taking.queued:
        logger.info("%s waits for a slot of concurrency key %r (held by %s)", run, limit.key, held)
        return False
    if policy is ConcurrencyPolicy.REJECT:
        store.delete(plan.run_id)
        raise ConcurrencyLimitError(run, limit.key, limit.limit, taking.holders)
    reason = (
        f"skipped: concurrency key {limit.key!r} was at its limit of {limit.limit} "
        f"(held by {held})"
    )
    store.finish(plan.run_id, RunState.CANCELLED, error=reason, settled=True)
    logger.warning("%s %s", run, reason)
    return False


def take_slot_again(
    app: Celery, store: RunStore, plan: Plan, control_queue: str | None, refused: str
) -> None:
    """Take a slot for ``plan``'s ended run, about to be retried; a retry does not wait.

    Raises :class:`RetryRefusedError` (its message begins with ``refused``)
    while the run's key is at its limit.
    """
    limit = plan.concurrency
    if limit is None:
        return
    taking = slots.take(store, plan.run_id, limit, wait=False)
    hand_on(app, store, control_queue, taking.handed_on)
    if not taking.granted:
        raise RetryRefusedError(
            f"{refused} now: concurrency key {limit.key!r} is at its limit of {limit.limit} "
            f"(held by {held_by(taking.holders)}); retry once one of them has ended"
        )


def held_by(holders: tuple[str, ...]) -> str:
    """The runs holding a key's slots, as messages name them."""
    return ", ".join(holders) or "runs that ended meanwhile"


def free_slot(app: Celery, store: RunStore, plan: Plan, control_queue: str | None) -> None:
    """Free the slot of ``plan``'s run, which has ended, and send the runs that get one."""
    if plan.concurrency is not None:
        handed_on = slots.release(store, plan.run_id, plan.concurrency.key)
        hand_on(app, store, control_queue, handed_on)


def hand_on(app: Celery, store: RunStore, control_queue: str | None, runs: Iterable[str]) -> None:
    """Send the opening message of each waiting run in ``runs``, which has got a slot.

    A run that cannot be sent is logged and keeps its slot until the slot
    expires (the definition's ``concurrency_expires``).
    """
    for run_id in runs:
        try:
            encoded = store.plan(run_id)
            if encoded is None:
                continue  # expired while it waited: the next change to the key drops it
            plan = decode_plan(encoded, app.conf.accept_content, typed_values=False)
            opening_signature(app, plan, control_queue).apply_async()
        except Exception:
            logger.exception("run %s got a slot, but its opening message was not sent", run_id)
        else:
            logger.info("run %s got a slot of its concurrency key and starts", run_id)
