"""How an order is fulfilled, as a Tasktronaut process.

Each step runs as its own Celery task on a worker; the tree is built (and its
arguments validated) in the web request that enqueues it.
"""

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasktronaut import Builder, ExecutionMode, ProcessDefinition, task

logger = logging.getLogger(__name__)

COURIER_DOWN = Path(__file__).resolve().parent.parent / "courier-down"
"""While this file exists, the courier's booking API is "down": ``touch courier-down``."""


class CourierUnavailableError(ConnectionError):
    """The courier's booking API did not answer."""


def order_lines(order_id: int) -> list[tuple[str, int]]:
    """The order's (SKU, quantity) lines: a stand-in for ``Order.objects.get(pk=order_id)``."""
    return [("MUG-RED", 2), ("TEE-M", 1), ("CAP-BLUE", order_id % 3 + 1)]


class NotifyCustomer(ProcessDefinition):
    """Tell the customer their order is on its way, by email and text at the same time."""

    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        builder.task(self.send_email)
        builder.task(self.send_sms)

    @task(description="Email the tracking link", max_retries=3, retry_backoff=True)
    def send_email(self, order_id: int) -> None:
        logger.info("order %d: emailed the tracking link", order_id)

    @task(description="Text the tracking link", max_retries=3, retry_backoff=True)
    def send_sms(self, order_id: int) -> None:
        logger.info("order %d: texted the tracking link", order_id)


class FulfilOrder(ProcessDefinition):
    """Reserve stock for every line, take payment, pack and ship, then notify the customer."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(order_id=int)

        # One step per order line, all reserved at once.
        with builder.concurrent() as reserving:
            for line in reserving.each(self.lines):
                line.task(self.reserve_stock)

        builder.task(self.charge_payment)

        with builder.concurrent() as shipping:
            shipping.task(self.print_packing_slip)
            shipping.task(self.book_courier)

        builder.sub_process(NotifyCustomer)

    def lines(self, order_id: int) -> Iterator[tuple[dict[str, Any], str]]:
        """Runs when the process is built: one set of arguments per line, and its description."""
        for sku, quantity in order_lines(order_id):
            yield {"sku": sku, "quantity": quantity}, f"Reserve {quantity} x {sku}"

    def reserve_stock(self, order_id: int, sku: str, quantity: int) -> None:
        logger.info("order %d: reserved %d x %s", order_id, quantity, sku)

    @task(description="Charge the customer's card")
    def charge_payment(self, order_id: int) -> None:
        time.sleep(1)  # stands in for the payment provider's round trip
        logger.info("order %d: payment captured", order_id)

    @task(description="Print the packing slip")
    def print_packing_slip(self, order_id: int) -> None:
        logger.info("order %d: packing slip printed", order_id)

    @task(description="Book the courier")
    def book_courier(self, order_id: int) -> None:
        if COURIER_DOWN.exists():
            raise CourierUnavailableError(f"order {order_id}: the courier's booking API is down")
        logger.info("order %d: courier booked", order_id)


class ReconcileStock(ProcessDefinition):
    """Nightly, per warehouse: count the shelves, then correct the stock levels.

    Started by django-celery-beat (see the README); a run still counting when
    the next one is due makes that one skip, rather than two counting at once.
    """

    concurrency_limit = 1
    concurrency_policy = "skip"

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(warehouse=str)
        builder.task(self.count_shelves)
        builder.task(self.correct_levels)

    def concurrency_key(self, **arguments: Any) -> str:
        """One reconciliation at a time per warehouse; other warehouses run side by side."""
        return f"reconcile-stock-{arguments['warehouse']}"

    @task(description="Count the shelves")
    def count_shelves(self, warehouse: str) -> None:
        logger.info("warehouse %s: shelves counted", warehouse)

    @task(description="Correct the stock levels")
    def correct_levels(self, warehouse: str) -> None:
        logger.info("warehouse %s: stock levels corrected", warehouse)
