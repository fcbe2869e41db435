"""Operating runs: orders shipped while the carrier's API is down, found, resumed, pruned.

A Celery app with Redis as broker and result backend, and a ``Shipment``
process whose ``book_carrier`` step fails while the carrier is down (a flag in
Redis, so the worker and the commands below share it)::

    celery -A examples.shipping worker --loglevel INFO        # a worker
    python -m examples.shipping down                           # the carrier goes down
    tasktronaut run examples.shipping:Shipment order_id=1001 card_token=tok_1 \
        --app examples.shipping                                # fails at book_carrier
    tasktronaut runs --app examples.shipping --state failed
    python -m examples.shipping up                             # the carrier is back
    tasktronaut retry RUN_ID --app examples.shipping --wait    # resumed at book_carrier

``docs/operating.rst`` shows this session's real output.
"""

from __future__ import annotations

import os
import sys

import redis
from celery import Celery

from tasktronaut import Builder, ProcessDefinition, task
from tasktronaut_celery import CeleryBackend

BROKER = os.environ.get("SHIPPING_BROKER", "redis://127.0.0.1:6379/2")
RESULTS = os.environ.get("SHIPPING_RESULTS", "redis://127.0.0.1:6379/3")
CARRIER_DOWN = "shipping:carrier-down"

app = Celery("shipping", broker=BROKER, backend=RESULTS)
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
backend = CeleryBackend(app)


def carrier_is_down() -> bool:
    """Whether the carrier's API answers (here: whether the flag is set)."""
    return bool(redis.Redis.from_url(RESULTS).exists(CARRIER_DOWN))


class Shipment(ProcessDefinition):
    """Reserve the stock, charge the card, book the carrier, confirm to the customer."""

    sensitive_arguments = ("card_token",)

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(order_id=int, card_token=str)
        builder.task(self.reserve_stock)
        builder.task(self.charge_card)
        builder.task(self.book_carrier)
        builder.task(self.send_confirmation)

    def reserve_stock(self, order_id: int) -> None:
        """Hold the order's items in the warehouse."""

    @task(description="Charge the customer's card")
    def charge_card(self, order_id: int, card_token: str) -> None:
        """Charge once: a resume must not charge again."""

    @task(description="Book a pick-up with the carrier")
    def book_carrier(self, order_id: int) -> None:
        if carrier_is_down():
            raise ConnectionError(f"carrier API unreachable while booking order {order_id}")

    def send_confirmation(self, order_id: int) -> None:
        """Tell the customer the parcel is on its way."""


def main(command: str) -> None:
    """``down`` or ``up``: the carrier's API stops or starts answering."""
    flags = redis.Redis.from_url(RESULTS)
    if command == "down":
        flags.set(CARRIER_DOWN, "1")
    elif command == "up":
        flags.delete(CARRIER_DOWN)
    else:
        raise SystemExit("usage: python -m examples.shipping down|up")


if __name__ == "__main__":
    main(*sys.argv[1:])
