"""Tasktronaut: declarative multi-step processes, built into an inspectable tree.

Subclass :class:`ProcessDefinition`, describe the steps in ``define_process``
with the :class:`Builder`, and ``build()`` it. Running it is a backend's job:
see ``tasktronaut_celery``.
"""

from .backend import Backend
from .builder import Builder
from .concurrency import ConcurrencyLimit, ConcurrencyPolicy
from .context import Context
from .decorators import task
from .definition import ProcessDefinition
from .errors import (
    BuildError,
    BuilderStateError,
    CancelProcessError,
    DefinitionError,
    InvalidArgumentsError,
    InvalidStepError,
    InvalidTaskOptionsError,
    NonRetryableProcessError,
    ProcessError,
    RedactedError,
    TasktronautError,
    UnknownDefinitionError,
)
from .nodes import BlockNode, ExecutionMode, ProcessNode, TaskNode
from .options import TaskOptions
from .process import Process
from .sensitive import redact

__all__ = [
    "Backend",
    "BlockNode",
    "BuildError",
    "Builder",
    "BuilderStateError",
    "CancelProcessError",
    "ConcurrencyLimit",
    "ConcurrencyPolicy",
    "Context",
    "DefinitionError",
    "ExecutionMode",
    "InvalidArgumentsError",
    "InvalidStepError",
    "InvalidTaskOptionsError",
    "NonRetryableProcessError",
    "Process",
    "ProcessDefinition",
    "ProcessError",
    "ProcessNode",
    "RedactedError",
    "TaskNode",
    "TaskOptions",
    "TasktronautError",
    "UnknownDefinitionError",
    "redact",
    "task",
]
