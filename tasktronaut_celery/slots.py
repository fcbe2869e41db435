"""Single flight: the slots of a concurrency key, kept in the run store.

Each key has one list, stored as one text the store compares-and-sets
(:meth:`RunStore.put_slots_if <tasktronaut_celery.store.RunStore.put_slots_if>`):
the runs that hold a slot and, behind them in order of enqueue, the runs that
wait for one. Every change reads the list, tidies it, changes it and writes it
back only if nobody wrote it meanwhile (else it starts again), so every store
keeps the same algorithm with one primitive.

Tidying drops the holders that no longer hold: a run that has ended (however:
success, failure, cancel, a lost worker that failed it), a run whose record is
gone, and a run that held its slot longer than its ``expires`` (its messages
were lost with a broker, say). Then the waiting runs at the head of the list
get the freed slots, in order; the caller sends the message that opens each.
So a slot is handed on by whoever ends the run (:func:`release`), and at the
latest by the next change to the key if that one was lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace

from tasktronaut.concurrency import ConcurrencyLimit

from .store import RunStore, now, to_seconds


@dataclass(frozen=True, slots=True)
class Slot:
    """A run holding a slot of its key (``granted`` is when it got it) or waiting for one."""

    run_id: str
    limit: int
    expires: float
    granted: float | None = None


def encode(slots: Sequence[Slot]) -> str | None:
    """The text a store keeps for a key's list: one JSON array per run, in the list's order.

    ``None`` for an empty list: the store then keeps nothing for the key.
    """
    return json.dumps([astuple(slot) for slot in slots]) if slots else None


def decode(text: str | None) -> list[Slot]:
    """The list :func:`encode` made (an empty one for a key never used)."""
    return [Slot(*fields) for fields in json.loads(text)] if text else []


@dataclass(frozen=True, slots=True)
class Taking:
    """What :func:`take` did: ``granted`` a slot, or queued the run, or neither.

    ``holders`` are the runs holding the key's slots when none was granted;
    ``handed_on`` the waiting runs that got a slot while the list was tidied,
    whose opening messages the caller sends.
    """

    granted: bool
    queued: bool
    holders: tuple[str, ...]
    handed_on: tuple[str, ...]


def take(store: RunStore, run_id: str, limit: ConcurrencyLimit, *, wait: bool) -> Taking:
    """Give ``run_id`` a slot of ``limit.key`` if one is free and nobody waits before it.

    Otherwise the run is put at the end of the waiting runs if ``wait``, and
    left out if not. Taking again a slot the run holds or waits for changes
    nothing but the list's tidying.
    """
    while True:
        stored = store.slots(limit.key)
        slots, handed_on = _tidy(store, decode(stored))
        holders = tuple(slot.run_id for slot in slots if slot.granted is not None)
        mine = next((slot for slot in slots if slot.run_id == run_id), None)
        if mine is None:
            mine = Slot(run_id, limit.limit, limit.expires.total_seconds())
            if len(holders) < limit.limit and len(slots) == len(holders):  # nobody waits
                mine = replace(mine, granted=now())
            if mine.granted is not None or wait:
                slots.append(mine)
        text = encode(slots)
        if text == stored or store.put_slots_if(limit.key, text, stored):
            granted = mine.granted is not None
            others = tuple(run for run in handed_on if run != run_id)  # it is the caller's own
            return Taking(
                granted, not granted and mine in slots, () if granted else holders, others
            )


def release(store: RunStore, run_id: str, key: str) -> tuple[str, ...]:
    """Free the slot ``run_id`` holds (or its place in the queue); the runs that now get one.

    A slot the run holds again, for a retry reopening it, is kept: a late
    message of the run's earlier attempt, or a client whose retry lost to
    another's, lets go of nothing.
    """
    while True:
        stored = store.slots(key)
        if stored is None:
            return ()
        moment = now()
        kept = [
            slot
            for slot in decode(stored)
            if slot.run_id != run_id or (slot.granted is not None and _holds(store, slot, moment))
        ]
        slots, handed_on = _tidy(store, kept)
        text = encode(slots)
        if text == stored or store.put_slots_if(key, text, stored):
            return handed_on


def _tidy(store: RunStore, slots: list[Slot]) -> tuple[list[Slot], tuple[str, ...]]:
    """The list without holders that no longer hold, and the waiting runs that got their slots."""
    moment = now()
    holding = [slot for slot in slots if slot.granted is not None and _holds(store, slot, moment)]
    waiting = [slot for slot in slots if slot.granted is None]
    handed_on: list[str] = []
    # In order of enqueue: nobody overtakes the head of the queue.
    while waiting and len(holding) < waiting[0].limit:
        slot = waiting.pop(0)
        record = store.record(slot.run_id)
        if record is None or record.state.finished:
            continue  # cancelled (or expired) while it waited
        holding.append(replace(slot, granted=moment))
        handed_on.append(slot.run_id)
    return holding + waiting, tuple(handed_on)


RETRY_GRACE = 60.0
"""Seconds a run that has ended holds a slot taken after its end: a retry is reopening it."""


def _holds(store: RunStore, slot: Slot, moment: float) -> bool:
    """Whether the run holding ``slot`` still holds it: it has not ended, vanished or expired.

    A retry takes its run's slot before it reopens the run: a slot taken
    after the run ended, moments ago, is held by that retry. (The times come
    from the clocks of the client that took the slot and of the worker that
    ended the run: hosts kept in time, as Celery's ETAs need them anyway.)
    """
    assert slot.granted is not None
    if moment > slot.granted + slot.expires:
        return False
    record = store.record(slot.run_id)
    if record is None:
        return False
    if not record.state.finished:
        return True
    ended = to_seconds(record.finished_at) if record.finished_at is not None else moment
    return ended <= slot.granted and moment - slot.granted < RETRY_GRACE
