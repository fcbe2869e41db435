"""JSON endpoints: start fulfilling an order, and follow a run's progress."""

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from proj.celery import backend

from tasktronaut_celery import RunNotFoundError, StepState

from .processes import FulfilOrder


@csrf_exempt  # an API for curl and other services, not a form
@require_POST
@transaction.atomic
def fulfil_order(request: HttpRequest, order_id: int) -> JsonResponse:
    """Start :class:`FulfilOrder` once this request's transaction commits; answer with the run id.

    A real view would save the order's new status in the same transaction:
    the run starts only once that is committed, and not at all on a rollback.
    """
    run = backend.enqueue_on_commit(FulfilOrder.build(order_id=order_id))
    return JsonResponse({"run_id": run.id}, status=202)


@require_GET
def run_progress(request: HttpRequest, run_id: str) -> JsonResponse:
    """The run's state and each step's, from any web process (state lives in the database)."""
    try:
        run = backend.run(run_id)
    except RunNotFoundError:
        return JsonResponse({"error": f"no run {run_id!r}"}, status=404)
    state = run.state  # read before the steps, so SUCCESS here means every step shows it
    steps = run.steps()
    return JsonResponse(
        {
            "state": state.value,
            "steps": [
                {
                    "path": step.path,
                    "name": step.name,
                    "description": step.description,
                    "state": step.state.value,
                    "attempts": step.attempts,
                }
                for step in steps
            ],
            "done": sum(step.state is StepState.SUCCESS for step in steps),
            "total": len(steps),
        }
    )
