"""FulfilOrder, run for real on the embedded backend by Tasktronaut's pytest plugin."""

import pytest

from tasktronaut_celery import ProcessFailed
from tasktronaut_celery.testing import assert_run

from .processes import CourierUnavailableError, FulfilOrder, NotifyCustomer

RESERVED = ["FulfilOrder.reserve_stock"] * 3


def test_an_order_is_reserved_charged_shipped_and_notified(tasktronaut_backend):
    run = FulfilOrder.build(order_id=42).enqueue(tasktronaut_backend).wait(timeout=30)

    outcome = assert_run(run, "success", failed=[], skipped=[])
    assert outcome.succeeded[:4] == [*RESERVED, "FulfilOrder.charge_payment"]
    assert sorted(outcome.succeeded[4:]) == [
        "FulfilOrder.book_courier",
        "FulfilOrder.print_packing_slip",
        "NotifyCustomer.send_email",
        "NotifyCustomer.send_sms",
    ]


def test_each_line_is_reserved_with_its_own_quantity(tasktronaut_backend, tasktronaut_steps):
    FulfilOrder.build(order_id=42).enqueue(tasktronaut_backend).wait(timeout=30)

    reserved = tasktronaut_steps.calls(FulfilOrder.reserve_stock)
    assert sorted((call.arguments["sku"], call.arguments["quantity"]) for call in reserved) == [
        ("CAP-BLUE", 1),
        ("MUG-RED", 2),
        ("TEE-M", 1),
    ]


def test_a_courier_outage_is_resumed_without_charging_twice(
    tasktronaut_backend, tasktronaut_steps
):
    tasktronaut_steps.fail(FulfilOrder.book_courier, error=CourierUnavailableError("API down"))
    run = FulfilOrder.build(order_id=7).enqueue(tasktronaut_backend)
    with pytest.raises(ProcessFailed, match="API down"):
        run.wait(timeout=30)
    assert_run(run, "failure", failed=["FulfilOrder.book_courier"])

    run.retry().wait(timeout=30)  # the outage is over: the fault failed one attempt

    assert_run(run, "success")
    assert len(tasktronaut_steps.calls(FulfilOrder.charge_payment)) == 1
    assert [call.attempt for call in tasktronaut_steps.calls(FulfilOrder.book_courier)] == [1, 1]


def test_a_flaky_mail_server_is_retried(tasktronaut_backend, tasktronaut_steps):
    # send_email is declared with @task(max_retries=3, retry_backoff=True)
    tasktronaut_steps.fail(NotifyCustomer.send_email, times=2, error=ConnectionError)

    FulfilOrder.build(order_id=42).enqueue(tasktronaut_backend).wait(timeout=30)

    emails = tasktronaut_steps.calls(NotifyCustomer.send_email)
    assert [call.attempt for call in emails] == [1, 2, 3]
    assert emails[0].arguments == {"order_id": 42}


def test_the_shape_of_the_process(tasktronaut_snapshot):
    tasktronaut_snapshot(FulfilOrder.build(order_id=42))
