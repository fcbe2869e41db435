"""Every error Tasktronaut raises, under one root.

Errors about bad input also subclass the matching built-in, so existing
``except ValueError`` / ``except TypeError`` code keeps working::

    TasktronautError
    ├── DefinitionError (TypeError)          a ProcessDefinition class is malformed
    ├── BuildError                           define_process() made a process that cannot run
    │   ├── InvalidStepError (TypeError)     a task, sub-process, each item or transform result
    │   │                                    is not what the builder accepts
    │   ├── BuilderStateError (RuntimeError) a builder used while an inner block is open,
    │   │                                    or after its block has closed
    │   └── InvalidArgumentsError (ValueError)
    │                                        arguments or options fail validation
    ├── InvalidTaskOptionsError (ValueError) per-step options out of range
    ├── UnknownDefinitionError (LookupError) a step names a definition or method this
    │                                        Python process does not know
    ├── RedactedError                        stands in, in logs and task events, for a step's
    │                                        exception whose text shows a sensitive argument
    └── ProcessError                         raised by steps to steer the run
        ├── NonRetryableProcessError         fail the step now, without retries
        └── CancelProcessError               cancel the whole run

Backends add their own errors under the same root.
"""

from __future__ import annotations


class TasktronautError(Exception):
    """Root of every error raised by Tasktronaut and its backends."""


class DefinitionError(TasktronautError, TypeError):
    """A ``ProcessDefinition`` subclass is malformed; raised when the class is defined."""


class BuildError(TasktronautError):
    """``define_process`` describes a process that cannot be built."""


class InvalidStepError(BuildError, TypeError):
    """A builder was handed something it cannot turn into a step."""


class BuilderStateError(BuildError, RuntimeError):
    """A builder was used while an inner ``with`` block was open, or after it closed."""


class InvalidArgumentsError(BuildError, ValueError):
    """Process arguments or options failed validation; the message lists every problem."""

    def __init__(self, process: str, problems: dict[str, str]) -> None:
        self.process = process
        self.problems = dict(problems)
        lines = "\n".join(f"  - {name}: {problem}" for name, problem in self.problems.items())
        count = len(self.problems)
        noun = "argument" if count == 1 else "arguments"
        super().__init__(f"{process}: {count} invalid {noun}:\n{lines}")


class InvalidTaskOptionsError(TasktronautError, ValueError):
    """A per-step option (retries, queue, time limits...) has a value out of range."""


class UnknownDefinitionError(TasktronautError, LookupError):
    """A step names a definition or method that is not registered in this Python process."""


class RedactedError(TasktronautError):
    """Stands in for an exception whose text shows the value of a sensitive argument.

    Its message is the original's ``TypeName: message`` with the values
    hidden. A backend raises it where the original would reach its logs and
    task events; hooks such as ``on_failed`` still receive the original.
    """


class ProcessError(TasktronautError):
    """Base for the errors a step raises on purpose to steer its run."""


class NonRetryableProcessError(ProcessError):
    """Raised by a step to fail it at once, skipping any retries it has left."""


class CancelProcessError(ProcessError):
    """Raised by a step to cancel the whole run: nothing that has not started will start."""
