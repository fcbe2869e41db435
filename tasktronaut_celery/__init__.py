"""Run Tasktronaut processes as Celery canvas on your own Celery app and workers.

``backend = CeleryBackend(app)`` next to your app, then
``run = MyProcess.build(**kwargs).enqueue(backend)``.
"""

from .backend import CeleryBackend
from .embedded import EmbeddedBackend
from .errors import (
    AppNotFoundError,
    ArgumentNotSerializableError,
    BrokerUnavailableError,
    ConcurrencyLimitError,
    CorruptPlanError,
    DuplicateRunError,
    PlanChangedError,
    ProcessCancelled,
    ProcessFailed,
    RetryRefusedError,
    RunError,
    RunNotFoundError,
    StepLostError,
    UnsafeSerializerWarning,
    UnsupportedAppError,
    WorkerCodeMismatchError,
)
from .run import Run, StepStatus
from .store import Progress, RunRecord, RunState, StepState

__all__ = [
    "AppNotFoundError",
    "ArgumentNotSerializableError",
    "BrokerUnavailableError",
    "CeleryBackend",
    "ConcurrencyLimitError",
    "CorruptPlanError",
    "DuplicateRunError",
    "EmbeddedBackend",
    "PlanChangedError",
    "ProcessCancelled",
    "ProcessFailed",
    "Progress",
    "RetryRefusedError",
    "Run",
    "RunError",
    "RunNotFoundError",
    "RunRecord",
    "RunState",
    "StepLostError",
    "StepState",
    "StepStatus",
    "UnsafeSerializerWarning",
    "UnsupportedAppError",
    "WorkerCodeMismatchError",
]
