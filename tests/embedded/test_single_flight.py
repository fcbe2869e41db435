"""Single flight on the embedded backend: limits, the queue's order, reject and skip.

The steps block on gates the test opens one at a time, so which runs hold
slots at each moment is known exactly, without guessing at timing.
``tests/integration/test_single_flight.py`` runs the same on real workers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tasktronaut import Builder, BuildError, DefinitionError, ProcessDefinition
from tasktronaut.concurrency import ConcurrencyLimit, ConcurrencyPolicy
from tasktronaut_celery import (
    ConcurrencyLimitError,
    EmbeddedBackend,
    ProcessCancelled,
    ProcessFailed,
    RetryRefusedError,
    RunState,
)
from tasktronaut_celery import slots as slot_lists
from tasktronaut_celery.plan import EncodedPlan
from tasktronaut_celery.stores.memory import MemoryRunStore

TIMEOUT = 20


class Gates:
    """Steps wait at their run's gate; the test sees which runs have entered, and opens gates."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open: set[str] = set()
        self.entered: list[str] = []
        self.inside: set[str] = set()
        self.most_inside = 0

    def enter(self, name: str) -> None:
        with self._changed:
            self.entered.append(name)
            self.inside.add(name)
            self.most_inside = max(self.most_inside, len(self.inside))
            self._changed.notify_all()
            if not self._changed.wait_for(lambda: name in self._open, timeout=TIMEOUT):
                raise TimeoutError(f"gate {name} never opened")
            self.inside.discard(name)

    def open(self, name: str) -> None:
        with self._changed:
            self._open.add(name)
            self._changed.notify_all()

    def wait_entered(self, count: int) -> list[str]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.entered) >= count, timeout=TIMEOUT):
                raise TimeoutError(f"{len(self.entered)} steps entered, not {count}")
            return list(self.entered)


GATES = Gates()


class Nightly(ProcessDefinition):
    """Two runs at most at once, per region; a third waits its turn."""

    concurrency_limit = 2

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(name=str, region=str)
        builder.task(self.work)
        builder.task(self.report)

    def concurrency_key(self, **arguments: object) -> str:
        return f"nightly-{arguments['region']}"

    def work(self, name: str) -> None:
        """Wait at the run's gate."""
        GATES.enter(name)

    def report(self, name: str) -> None:
        """Fail when asked to."""
        if name.startswith("failing"):
            raise ValueError(f"{name} failed")


class Exclusive(ProcessDefinition):
    """One at a time; another is refused."""

    concurrency_limit = 1
    concurrency_policy = "reject"

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(name=str)
        builder.task(self.work)

    def work(self, name: str) -> None:
        """Wait at the run's gate."""
        GATES.enter(name)


class Skipping(Exclusive):
    """One at a time; another is skipped."""

    concurrency_policy = "skip"


FAILING: set[str] = set()


class Flaky(Exclusive):
    """One at a time, refused beyond; fails while its name is in ``FAILING``."""

    def define_process(self, builder: Builder) -> None:
        super().define_process(builder)
        builder.task(self.check)

    def check(self, name: str) -> None:
        """Fail while asked to."""
        if name in FAILING:
            raise ValueError(f"{name} failed")


@pytest.fixture
def gates() -> Iterator[Gates]:
    """Fresh gates; any left shut at the end are opened so no step stays blocked."""
    global GATES
    GATES = Gates()
    yield GATES
    for name in GATES.entered:
        GATES.open(name)


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedBackend]:
    """Enough worker threads for every run of a test at once: only the limits hold them back."""
    with EmbeddedBackend(concurrency=12) as backend:
        yield backend


def test_ten_runs_of_one_key_run_two_at_a_time_in_order_of_enqueue(
    embedded: EmbeddedBackend, gates: Gates
) -> None:
    names = [f"run{index}" for index in range(10)]
    runs = [embedded.enqueue(Nightly.build(name=name, region="eu")) for name in names]

    assert sorted(gates.wait_entered(2)) == names[:2]
    assert [run.state for run in runs[2:]] == [RunState.PENDING] * 8
    for index, name in enumerate(names[:-2]):
        gates.open(name)
        entered = gates.wait_entered(index + 3)
        assert entered[-1] == names[index + 2]  # the next in order of enqueue, and only it
    for name in names[-2:]:
        gates.open(name)

    for run in runs:
        assert run.wait(timeout=TIMEOUT).state is RunState.SUCCESS
    assert sorted(gates.entered[:2]) == names[:2]
    assert gates.entered[2:] == names[2:]
    assert gates.most_inside == 2


def test_runs_of_other_keys_do_not_wait(embedded: EmbeddedBackend, gates: Gates) -> None:
    held = [embedded.enqueue(Nightly.build(name=f"eu{index}", region="eu")) for index in range(2)]
    gates.wait_entered(2)

    other = embedded.enqueue(Nightly.build(name="us0", region="us"))

    assert "us0" in gates.wait_entered(3)
    for name in ("eu0", "eu1", "us0"):
        gates.open(name)
    for run in (*held, other):
        assert run.wait(timeout=TIMEOUT).state is RunState.SUCCESS


def test_a_failed_run_frees_its_slot(embedded: EmbeddedBackend, gates: Gates) -> None:
    failing = embedded.enqueue(Nightly.build(name="failing", region="asia"))
    holding = embedded.enqueue(Nightly.build(name="holding", region="asia"))
    waiting = embedded.enqueue(Nightly.build(name="waiting", region="asia"))
    gates.wait_entered(2)

    gates.open("failing")
    with pytest.raises(ProcessFailed):
        failing.wait(timeout=TIMEOUT)

    assert gates.wait_entered(3)[-1] == "waiting"
    gates.open("holding")
    gates.open("waiting")
    assert waiting.wait(timeout=TIMEOUT).state is RunState.SUCCESS
    assert holding.wait(timeout=TIMEOUT).state is RunState.SUCCESS


def test_a_waiting_run_that_is_cancelled_gives_up_its_place(
    embedded: EmbeddedBackend, gates: Gates
) -> None:
    first, second = (
        embedded.enqueue(Nightly.build(name=name, region="af")) for name in ("first", "second")
    )
    gates.wait_entered(2)
    cancelled = embedded.enqueue(Nightly.build(name="cancelled", region="af"))
    last = embedded.enqueue(Nightly.build(name="last", region="af"))

    assert cancelled.cancel()
    with pytest.raises(ProcessCancelled):
        cancelled.wait(timeout=TIMEOUT)
    gates.open("first")

    assert gates.wait_entered(3)[-1] == "last"
    for name in ("second", "last"):
        gates.open(name)
    for run in (first, second, last):
        assert run.wait(timeout=TIMEOUT).state is RunState.SUCCESS
    assert "cancelled" not in gates.entered


def test_reject_refuses_the_run_naming_the_one_that_holds_the_slot(
    embedded: EmbeddedBackend, gates: Gates
) -> None:
    holder = embedded.enqueue(Exclusive.build(identifier="exclusive-holder", name="holder"))
    gates.wait_entered(1)

    with pytest.raises(ConcurrencyLimitError, match="held by run exclusive-holder") as refused:
        embedded.enqueue(Exclusive.build(identifier="exclusive-refused", name="refused"))

    assert refused.value.holders == ("exclusive-holder",)
    assert "Exclusive run exclusive-refused" in str(refused.value)
    assert embedded.store.record("exclusive-refused") is None  # nothing kept or sent
    gates.open("holder")
    assert holder.wait(timeout=TIMEOUT).state is RunState.SUCCESS
    again = embedded.enqueue(Exclusive.build(name="again"))
    gates.wait_entered(2)
    gates.open("again")
    assert again.wait(timeout=TIMEOUT).state is RunState.SUCCESS


def test_skip_drops_the_run_and_says_why(
    embedded: EmbeddedBackend, gates: Gates, caplog: pytest.LogCaptureFixture
) -> None:
    holder = embedded.enqueue(Skipping.build(identifier="skipping-holder", name="holder"))
    gates.wait_entered(1)

    skipped = embedded.enqueue(Skipping.build(identifier="skipping-skipped", name="skipped"))

    assert skipped.state is RunState.CANCELLED
    assert skipped.record.error == (
        "skipped: concurrency key 'tests.embedded.test_single_flight:Skipping' was at its "
        "limit of 1 (held by skipping-holder)"
    )
    assert "skipping-skipped skipped" in caplog.text
    gates.open("holder")
    assert holder.wait(timeout=TIMEOUT).state is RunState.SUCCESS


def test_a_tick_refused_by_the_limit_is_logged_not_raised(
    embedded: EmbeddedBackend, gates: Gates, caplog: pytest.LogCaptureFixture
) -> None:
    holder = embedded.enqueue(Exclusive.build(identifier="tick-holder", name="tick-holder"))
    gates.wait_entered(1)
    entry = embedded.beat_entry(Exclusive, 60.0, identifier="exclusive-tick", name="ticked")
    kwargs = {**entry["kwargs"], "tick": 1_800_000_000.0}

    result = embedded.app.tasks[entry["task"]].delay(**kwargs)
    identifier = result.get(timeout=TIMEOUT, disable_sync_subtasks=False)

    assert identifier == "exclusive-tick@20270115T080000Z"
    assert embedded.store.record(identifier) is None
    assert f"{identifier}: not started this tick" in caplog.text
    assert "held by run tick-holder" in caplog.text
    gates.open("tick-holder")
    assert holder.wait(timeout=TIMEOUT).state is RunState.SUCCESS


def test_a_retry_takes_a_slot_or_is_refused(embedded: EmbeddedBackend, gates: Gates) -> None:
    FAILING.add("retried")
    failed = embedded.enqueue(Flaky.build(identifier="retried", name="retried"))
    gates.open("retried")
    with pytest.raises(ProcessFailed):
        failed.wait(timeout=TIMEOUT)
    holder = embedded.enqueue(Flaky.build(identifier="retry-holder", name="retry-holder"))
    gates.wait_entered(2)
    FAILING.discard("retried")

    with pytest.raises(RetryRefusedError, match="held by retry-holder"):
        failed.retry()

    gates.open("retry-holder")
    assert holder.wait(timeout=TIMEOUT).state is RunState.SUCCESS
    failed.retry()
    assert failed.wait(timeout=TIMEOUT).state is RunState.SUCCESS


def test_the_limit_is_checked_when_the_class_is_defined_and_the_key_when_built() -> None:
    with pytest.raises(DefinitionError, match="concurrency_policy must be one of"):

        class Wrong(ProcessDefinition):
            concurrency_policy = "wait"

    class Keyless(Exclusive):
        def concurrency_key(self, **arguments: object) -> str:
            return ""

    with pytest.raises(BuildError, match=r"Keyless.concurrency_key\(\) must return a string"):
        Keyless.build(name="x")


def test_a_holder_that_vanished_or_expired_gives_up_its_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryRunStore()
    limit = ConcurrencyLimit("key", 1, ConcurrencyPolicy.QUEUE, timedelta(minutes=10))
    clock = [1_000.0]
    monkeypatch.setattr(slot_lists, "now", lambda: clock[0])
    for run in ("vanished", "expired", "next", "last"):
        store.create(run, EncodedPlan("application/json", "utf-8", b"{}"))

    assert slot_lists.take(store, "vanished", limit, wait=True).granted
    assert slot_lists.take(store, "expired", limit, wait=True).queued
    assert slot_lists.take(store, "next", limit, wait=True).queued
    store.delete("vanished")  # its record expired, say

    taking = slot_lists.take(store, "last", limit, wait=True)

    assert taking.handed_on == ("expired",)
    assert taking.holders == ("expired",)
    clock[0] += 601  # "expired" has held its slot longer than it may
    assert slot_lists.release(store, "nobody", "key") == ("next",)


def memory_runs(*run_ids: str) -> MemoryRunStore:
    """A memory store holding PENDING runs ``run_ids``."""
    store = MemoryRunStore()
    for run_id in run_ids:
        store.create(run_id, EncodedPlan("application/json", "utf-8", b"{}"))
    return store


ONE = ConcurrencyLimit("key", 1, ConcurrencyPolicy.QUEUE, timedelta(minutes=10))


def test_taking_again_keeps_what_tidying_handed_on() -> None:
    store = memory_runs("ended", "waiting", "late")
    slot_lists.take(store, "ended", ONE, wait=True)
    slot_lists.take(store, "waiting", ONE, wait=True)
    store.finish("ended", RunState.SUCCESS)  # and its worker died before letting go

    again = slot_lists.take(store, "waiting", ONE, wait=True)

    assert (again.granted, again.handed_on) == (True, ())  # its own opening is the caller's
    late = slot_lists.take(store, "late", ONE, wait=True)
    assert (late.queued, late.holders, late.handed_on) == (True, ("waiting",), ())


def test_a_retried_run_holds_the_slot_it_took_before_it_reopens() -> None:
    store = memory_runs("retried", "other")
    slot_lists.take(store, "retried", ONE, wait=False)
    store.finish("retried", RunState.FAILURE)
    slot_lists.release(store, "retried", "key")

    assert slot_lists.take(store, "retried", ONE, wait=False).granted  # still FAILURE: the retry
    other = slot_lists.take(store, "other", ONE, wait=False)

    assert (other.granted, other.holders) == (False, ("retried",))


def test_a_late_release_keeps_the_slot_a_retry_took() -> None:
    """A stray message of the failed attempt, or a client whose retry lost, lets go of nothing."""
    store = memory_runs("retried", "other")
    slot_lists.take(store, "retried", ONE, wait=False)
    store.finish("retried", RunState.FAILURE)
    slot_lists.release(store, "retried", "key")  # as it settled
    assert slot_lists.take(store, "retried", ONE, wait=False).granted  # the retry

    slot_lists.release(store, "retried", "key")

    assert not slot_lists.take(store, "other", ONE, wait=False).granted
