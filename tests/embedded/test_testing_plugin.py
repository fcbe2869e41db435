"""The pytest plugin ``tasktronaut_celery.testing``, as a user's project uses it.

Each test writes a small project into a temporary directory (its processes
and its tests) and runs pytest on it in a subprocess, as a user would:
passing tests, a failing one and its message, isolation between tests,
faults and records, graph snapshots, ``celery.contrib.pytest``'s app, and
two xdist workers.
"""

from __future__ import annotations

import re
import textwrap

import pytest

pytestmark = pytest.mark.usefixtures("project")

PROCESSES = '''
import threading

from tasktronaut import Builder, Context, ExecutionMode, NonRetryableProcessError, ProcessDefinition, task

RELEASE = threading.Event()


class Shipment(ProcessDefinition):
    """Ten steps: three in a row, a concurrent block of five, two more."""

    sensitive_arguments = ("card",)

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(order=int, card=str)
        builder.task(self.reserve)
        builder.task(self.charge)
        builder.task(self.invoice)
        with builder.concurrent() as packing:
            for item in packing.each(self.items):
                item.task(self.pack)
        builder.task(self.book_courier)
        builder.task(self.notify)

    def items(self, order: int):
        for number in range(5):
            yield {"item": number}, f"Pack item {number}"

    def reserve(self, order: int) -> None: ...

    @task(max_retries=3)
    def charge(self, order: int, card: str, context: Context) -> None: ...

    def invoice(self, order: int) -> None: ...

    def pack(self, order: int, item: int) -> None: ...

    def book_courier(self, order: int) -> None: ...

    def notify(self, order: int) -> None: ...


class Held(ProcessDefinition):
    """One step that waits until released (or ten seconds)."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.wait)

    def wait(self) -> None:
        RELEASE.wait(10)


STARTING = threading.Event()
STEPPED = threading.Event()


class SlowStart(ProcessDefinition):
    """Its on_started waits until released: its step reaches the runner late."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)

    def on_started(self, identifier: str) -> None:
        STARTING.set()
        RELEASE.wait(10)

    def first(self) -> None:
        STEPPED.set()


class ExpressShipment(Shipment):
    """Inherits every step of Shipment."""
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: its processes, and the plugin enabled in its conftest."""
    pytester.makepyfile(processes=PROCESSES)
    pytester.makeconftest('pytest_plugins = ["tasktronaut_celery.testing"]')
    return pytester


def run(
    pytester: pytest.Pytester,
    tests: str,
    *arguments: str,
    others: tuple[str, ...] = ("-p", "no:celery"),
) -> pytest.RunResult:
    """Run the project's ``test_user.py`` (``tests``) in a subprocess, as the user would.

    pytest-celery 1.x's plugin is off (``others``) unless a test says otherwise.
    """
    pytester.makepyfile(test_user=textwrap.dedent(tests))
    return pytester.runpytest_subprocess(*others, "-p", "no:cacheprovider", *arguments)


def test_a_process_runs_for_real_in_a_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from processes import Shipment
        from tasktronaut_celery.testing import assert_run

        def test_shipping(tasktronaut_backend):
            run = Shipment.build(order=7, card="4111").enqueue(tasktronaut_backend).wait(timeout=10)

            assert_run(
                run,
                "success",
                succeeded=["Shipment.reserve", "Shipment.charge", "Shipment.invoice"]
                + ["Shipment.pack"] * 5
                + ["Shipment.book_courier", "Shipment.notify"],
            )
        """,
        others=(),  # with pytest-celery 1.x's plugin loaded, as it is once installed
    )

    result.assert_outcomes(passed=1)


def test_a_failing_assertion_says_which_steps_differ(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from processes import Shipment
        from tasktronaut_celery.testing import assert_run

        def test_shipping(tasktronaut_backend, tasktronaut_steps):
            tasktronaut_steps.fail(Shipment.book_courier, times=None)
            run = Shipment.build(order=7, card="4111").enqueue(tasktronaut_backend)
            run.wait(timeout=10)

        def test_expecting_success(tasktronaut_backend, tasktronaut_steps):
            tasktronaut_steps.fail(Shipment.book_courier, times=None)
            run = Shipment.build(order=8, card="4111").enqueue(tasktronaut_backend)
            try:
                run.wait(timeout=10)
            except Exception:
                pass
            every_step = ["Shipment.reserve", "Shipment.charge", "Shipment.invoice"]
            every_step += ["Shipment.pack"] * 5 + ["Shipment.book_courier", "Shipment.notify"]
            assert_run(run, "success", succeeded=every_step, failed=[])
        """,
    )

    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert "ProcessFailed" in output  # the first test's run failed: wait() says so
    assert "injected failure of Shipment.book_courier" in output
    assert re.search(r"did not end as expected:\n--- expected\n\+\+\+ run \w+", output), output
    assert "-state: SUCCESS\n+state: FAILURE" in output
    assert "-succeeded: Shipment.book_courier\n-succeeded: Shipment.notify\n" in output
    assert "+failed: Shipment.book_courier\n skipped: Shipment.notify" in output


def test_each_test_starts_with_no_runs(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import processes
        from processes import Held, Shipment, SlowStart

        def test_leaves_runs_behind(tasktronaut_backend, tasktronaut_steps):
            Shipment.build(order=1, card="4111").enqueue(tasktronaut_backend).wait(timeout=10)
            Held.build().enqueue(tasktronaut_backend)  # still running when the test ends
            SlowStart.build().enqueue(tasktronaut_backend)
            assert processes.STARTING.wait(10)  # its step is admitted, not yet run
            tasktronaut_steps.fail(SlowStart.first, times=None)

        def test_sees_none_of_them(tasktronaut_backend, tasktronaut_steps):
            assert tasktronaut_backend.runs() == []
            processes.RELEASE.set()  # the earlier test's steps go on now
            assert processes.STEPPED.wait(10)
            tasktronaut_steps.fail(SlowStart.first, times=None)

            assert tasktronaut_steps.calls() == []  # theirs are not this test's
        """,
    )

    result.assert_outcomes(passed=2)


def test_a_fault_on_an_inherited_step_and_one_that_never_fired(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from processes import ExpressShipment, Shipment
        from tasktronaut_celery.testing import assert_run

        def test_inherited(tasktronaut_backend, tasktronaut_steps):
            tasktronaut_steps.fail(Shipment.charge, times=1)
            tasktronaut_steps.fail("Shipment.chrage")  # misspelled: never fires
            run = ExpressShipment.build(order=2, card="4111").enqueue(tasktronaut_backend)

            assert_run(run.wait(timeout=10), "success")
            charges = tasktronaut_steps.calls(Shipment.charge)
            assert [(call.step, call.attempt) for call in charges] == [
                ("ExpressShipment.charge", 1),
                ("ExpressShipment.charge", 2),
            ]
            assert tasktronaut_steps.calls("Shipment.charge") == []  # the name is the class's own
        """,
    )

    result.assert_outcomes(passed=1)  # older Celery adds warnings of its own
    assert "faults that never fired" in result.stdout.str()
    assert "Shipment.chrage" in result.stdout.str()


def test_faults_fail_retry_and_cancel_and_calls_are_recorded(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        from processes import Shipment
        from tasktronaut import NonRetryableProcessError
        from tasktronaut_celery import ProcessCancelled, ProcessFailed
        from tasktronaut_celery.testing import assert_run

        def test_a_step_failing_twice_is_retried(tasktronaut_backend, tasktronaut_steps):
            tasktronaut_steps.fail(Shipment.charge, times=2, error=ConnectionError("card API down"))
            run = Shipment.build(order=3, card="4111").enqueue(tasktronaut_backend).wait(timeout=10)

            charges = tasktronaut_steps.calls(Shipment.charge)
            assert [call.attempt for call in charges] == [1, 2, 3]
            assert charges[0].arguments == {"order": 3, "card": "4111"}
            assert charges[0].path == "1"
            assert charges[0].run_id == run.id
            assert sorted(c.arguments["item"] for c in tasktronaut_steps.calls("Shipment.pack")) == [0, 1, 2, 3, 4]

        def test_an_error_that_is_not_retried(tasktronaut_backend, tasktronaut_steps):
            tasktronaut_steps.fail(Shipment.charge, error=NonRetryableProcessError("card declined"))
            run = Shipment.build(order=4, card="4111").enqueue(tasktronaut_backend)

            with pytest.raises(ProcessFailed, match="card declined"):
                run.wait(timeout=10)
            assert_run(run, "failure", succeeded=["Shipment.reserve"], failed=["Shipment.charge"])

        def test_one_member_fails(tasktronaut_backend, tasktronaut_steps):
            tasktronaut_steps.fail(Shipment.pack, times=None, path="3.2")
            run = Shipment.build(order=5, card="4111").enqueue(tasktronaut_backend)

            with pytest.raises(ProcessFailed):
                run.wait(timeout=10)
            assert [call.path for call in tasktronaut_steps.calls(Shipment.pack) if call.path == "3.2"] == ["3.2"]

        def test_a_step_cancels_the_run(tasktronaut_backend, tasktronaut_steps):
            tasktronaut_steps.cancel(Shipment.invoice)
            run = Shipment.build(order=6, card="4111").enqueue(tasktronaut_backend)

            with pytest.raises(ProcessCancelled):
                run.wait(timeout=10)
            assert_run(run, "cancelled", cancelled=["Shipment.invoice"])

        def test_concurrent_steps_in_any_order(tasktronaut_backend):
            run = Shipment.build(order=7, card="4111").enqueue(tasktronaut_backend).wait(timeout=10)

            outcome = assert_run(
                run,
                "success",
                ordered=False,
                succeeded=["Shipment.pack"] * 5
                + ["Shipment.notify", "Shipment.book_courier", "Shipment.invoice"]
                + ["Shipment.charge", "Shipment.reserve"],
            )
            assert outcome.running == []

        def test_an_exception_class_that_needs_arguments_is_refused(tasktronaut_steps):
            class ApiError(Exception):
                def __init__(self, code):
                    super().__init__(code)

            with pytest.raises(ValueError, match="give an instance"):
                tasktronaut_steps.fail(Shipment.charge, error=ApiError)
        """,
    )

    result.assert_outcomes(passed=6)


def test_graph_snapshots_are_written_compared_and_updated(pytester: pytest.Pytester) -> None:
    tests = """
        from processes import Shipment

        def test_graph(tasktronaut_snapshot):
            tasktronaut_snapshot(Shipment.build(order=ORDER, card="4111"))

        class TestShapes:
            def test_graph(self, tasktronaut_snapshot):
                tasktronaut_snapshot(Shipment.build(order=ORDER, card="4111"), form="dot")
        """
    missing = run(pytester, tests.replace("ORDER", "1"))
    first = run(pytester, tests.replace("ORDER", "1"), "--tasktronaut-update-snapshots")
    snapshot = pytester.path / "snapshots" / "test_user" / "test_graph.mmd"
    written = snapshot.read_text()
    same = run(pytester, tests.replace("ORDER", "2"))
    snapshot.write_text(written.replace("notify", "notify_all"))
    changed = run(pytester, tests.replace("ORDER", "1"))
    updated = run(pytester, tests.replace("ORDER", "1"), "--tasktronaut-update-snapshots")

    missing.assert_outcomes(failed=2)
    assert "--tasktronaut-update-snapshots writes it" in missing.stdout.str()
    first.assert_outcomes(passed=2)
    assert written.startswith("flowchart")
    assert (snapshot.parent / "TestShapes.test_graph.dot").read_text().startswith("digraph")
    same.assert_outcomes(passed=2)
    changed.assert_outcomes(passed=1, failed=1)
    assert "the graph differs from its snapshot" in changed.stdout.str()
    assert "--tasktronaut-update-snapshots accepts it" in changed.stdout.str()
    updated.assert_outcomes(passed=2)
    assert snapshot.read_text() == written


def test_the_users_own_app_with_celery_contrib_pytest(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from processes import Shipment
        from tasktronaut_celery.testing import assert_run

        def test_on_my_app(tasktronaut_app_backend, tasktronaut_steps):
            tasktronaut_steps.fail(Shipment.charge)
            run = Shipment.build(order=9, card="4111").enqueue(tasktronaut_app_backend)

            assert_run(run.wait(timeout=30), "success")
            assert [call.attempt for call in tasktronaut_steps.calls(Shipment.charge)] == [1, 2]
            assert run.id in {r.id for r in tasktronaut_app_backend.runs()}
        """,
        "-p",
        "celery.contrib.pytest",
    )

    result.assert_outcomes(passed=1)


def test_two_xdist_workers_each_get_their_own_backend(pytester: pytest.Pytester) -> None:
    tests = "import os\n" + "\n".join(
        f"""
def test_{number}(tasktronaut_backend):
    from processes import Shipment
    run = Shipment.build(order={number}, card="4111").enqueue(tasktronaut_backend).wait(timeout=10)
    assert [r.id for r in tasktronaut_backend.runs()] == [run.id]
    with open(os.environ["PYTEST_XDIST_WORKER"] + ".backends", "a") as backends:
        backends.write(tasktronaut_backend.app.main + "\\n")
"""
        for number in range(8)
    )

    result = run(pytester, tests, "-n", "2", "-p", "xdist")

    result.assert_outcomes(passed=8)
    assert "2 workers" in result.stdout.str()
    backends = [set(path.read_text().split()) for path in sorted(pytester.path.glob("*.backends"))]
    assert [len(names) for names in backends] == [1, 1]  # one backend per worker
    assert backends[0] != backends[1]
