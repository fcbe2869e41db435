"""A Celery app whose runs live in the Django database (result backend ``django-db``).

The admin's tests name it in ``TASKTRONAUT_CELERY_APP``, as a project names
its own. Its definitions are the admin's test processes: a shipment whose
courier can be "down", and one that waits until let go (to be cancelled).
"""

from __future__ import annotations

import threading

from celery import Celery

from tasktronaut import Builder, Context, ProcessDefinition, task
from tasktronaut_celery import CeleryBackend
from tests.services import BROKERS

QUEUE = "django-admin"
HELD = 30

COURIER_DOWN = threading.Event()
"""While set, the courier step fails: the carrier's API is down."""

RELEASED: dict[str, threading.Event] = {}
"""Per run: set to let the held step of :class:`Held` finish."""


class Shipment(ProcessDefinition):
    """Reserve, charge and ship an order; shipping fails while the courier is down."""

    sensitive_arguments = ("card",)

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(order=int, card=str)
        builder.task(self.reserve)
        with builder.concurrent() as charging:
            charging.task(self.charge)
            charging.task(self.pack)
        builder.task(self.ship)

    @task(description="Reserve the stock")
    def reserve(self, order: int, card: str) -> None:
        """Nothing to do."""

    @task(description="Charge the card")
    def charge(self, order: int, card: str) -> None:
        """Nothing to do."""

    @task(description="Pack the parcel")
    def pack(self, order: int, card: str) -> None:
        """Nothing to do."""

    @task(description="Book the courier")
    def ship(self, order: int, card: str) -> None:
        if COURIER_DOWN.is_set():
            raise ConnectionError(f"courier API down (order {order}, card {card})")


class Held(ProcessDefinition):
    """One step that waits until its run is released."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.wait)

    def wait(self, context: Context) -> None:
        RELEASED.setdefault(context.process_id, threading.Event()).wait(HELD)


app = Celery("tasktronaut-django-admin", broker=BROKERS["redis"], backend="django-db")
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)
backend = CeleryBackend(app)
