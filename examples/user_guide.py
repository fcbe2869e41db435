"""Every process from the user guide, as runnable code.

The classes and method names are the guide's own. Where the guide leaves a
method out or its body empty, the method here logs what it would do. Run
``python -m examples.user_guide`` to build each process and print its tree.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from typing import Any, Optional

from tasktronaut import Builder, Context, ExecutionMode, ProcessDefinition, task

logger = logging.getLogger(__name__)


class MyProcess(ProcessDefinition):
    """Getting started: three steps, one after another."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.step_one)
        builder.task(self.step_two)
        builder.task(self.step_three)

    def step_one(self) -> None:
        print("Executing step one")

    def step_two(self) -> None:
        print("Executing step two")

    def step_three(self) -> None:
        print("Executing step three")


class SequentialProcess(ProcessDefinition):
    """Steps run in order: task_a, then task_b, then task_c."""

    process_execution_mode = ExecutionMode.SEQUENTIAL

    def define_process(self, builder: Builder) -> None:
        builder.task(self.task_a)
        builder.task(self.task_b)
        builder.task(self.task_c)

    def task_a(self) -> None:
        logger.info("task a")

    def task_b(self) -> None:
        logger.info("task b")

    def task_c(self) -> None:
        logger.info("task c")


class ConcurrentProcess(ProcessDefinition):
    """All three steps may run at the same time."""

    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        builder.task(self.task_a)
        builder.task(self.task_b)
        builder.task(self.task_c)

    def task_a(self) -> None:
        logger.info("task a")

    def task_b(self) -> None:
        logger.info("task b")

    def task_c(self) -> None:
        logger.info("task c")


class MixedProcess(ProcessDefinition):
    """A sequential block and a concurrent block between a setup and a cleanup step."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.setup)

        # Run these tasks sequentially
        with builder.sequential() as b:
            b.task(self.step_one)
            b.task(self.step_two)

        # Run these tasks concurrently
        with builder.concurrent() as b:
            b.task(self.parallel_task_a)
            b.task(self.parallel_task_b)

        builder.task(self.cleanup)

    @task
    def setup(self) -> None:
        logger.info("setting up")

    def step_one(self) -> None:
        logger.info("step one")

    def step_two(self) -> None:
        logger.info("step two")

    def parallel_task_a(self) -> None:
        logger.info("parallel task a")

    def parallel_task_b(self) -> None:
        logger.info("parallel task b")

    @task()
    def cleanup(self) -> None:
        logger.info("cleaning up")


class ProcessWithArguments(ProcessDefinition):
    """Arguments validated (and coerced) with pydantic when the process is built."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(
            name=str,
            count=int,
            date=datetime.date,
            tags=list[str],
            description=Optional[str],  # noqa: UP045 - the guide's spelling
            data=None,  # Any type accepted
        )
        builder.task(self.process_data)

    @task(description="Processes data input")
    def process_data(self, name: str, count: int, **kwargs: Any) -> None:
        logger.info("processing %s x %d (%s)", name, count, sorted(kwargs))


class ProcessWithSensitiveArguments(ProcessDefinition):
    """A password and a token that errors, worker logs and Flower never show."""

    sensitive_arguments = ("password", "api_token")

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(username=str, password=str, api_token=str)
        builder.task(self.create_account)
        builder.task(self.register_with_partner)

    def create_account(self, username: str, password: str) -> None:
        logger.info("creating the account of %s", username)

    def register_with_partner(self, username: str, api_token: str) -> None:
        logger.info("registering %s with the partner", username)


class ConditionalProcess(ProcessDefinition):
    """Steps included or left out by boolean options given to ``build(options=...)``."""

    def define_process(self, builder: Builder) -> None:
        if builder.option("enable_validation", False):
            builder.task(self.validate_input)

        builder.task(self.process)

        if builder.option("enable_logging", True):
            builder.task(self.log_results)

    def validate_input(self) -> None:
        logger.info("validating input")

    def process(self) -> None:
        logger.info("processing")

    def log_results(self) -> None:
        logger.info("logging results")


class IterativeProcess(ProcessDefinition):
    """One step per file, each seeing its own ``filename``."""

    def items(self, files: list[str], **_: Any) -> Iterator[dict[str, Any]]:
        for file in files:
            yield {"filename": file}

    def define_process(self, builder: Builder) -> None:
        for iteration in builder.each(self.items):
            iteration.task(self.process_file)

    def process_file(self, filename: str, **kwargs: Any) -> None:
        print(f"Processing {filename}")


class IterativeProcessWithDescriptions(ProcessDefinition):
    """Like :class:`IterativeProcess`, with a description for each iteration."""

    def items(self, files: list[str], **_: Any) -> Iterator[tuple[dict[str, Any], str]]:
        for file in files:
            yield ({"filename": file}, f"Processing {file}")

    def define_process(self, builder: Builder) -> None:
        for iteration in builder.each(self.items):
            iteration.task(self.process_file)

    def process_file(self, filename: str, **kwargs: Any) -> None:
        print(f"Processing {filename}")


class TransformingProcess(ProcessDefinition):
    """Arguments transformed at build time before the step sees them."""

    def transform_input(self, raw_data: str, **_: Any) -> dict[str, Any]:
        return {
            "processed_data": raw_data.upper(),
        }

    def define_process(self, builder: Builder) -> None:
        with builder.transform(self.transform_input) as transformed:
            transformed.task(self.process)

    def process(self, processed_data: str, **kwargs: Any) -> None:
        logger.info("processing %s", processed_data)


class TransformingProcessWithDescription(ProcessDefinition):
    """A transform that also describes the steps it feeds."""

    def transform_input(self, item_id: int, **_: Any) -> tuple[dict[str, Any], str]:
        return (
            {"processed_id": item_id * 2},
            f"Processing item {item_id}",
        )

    def define_process(self, builder: Builder) -> None:
        with builder.transform(self.transform_input) as transformed:
            transformed.task(self.process)

    def process(self, processed_id: int, context: Context, **kwargs: Any) -> None:
        logger.info("%s: item %d [%s]", context.description, processed_id, context.process_id)


class ValidationProcess(ProcessDefinition):
    """A small process meant to be reused as a sub-process."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.check_schema)
        builder.task(self.check_constraints)

    @task(description="Check the schema")
    def check_schema(self) -> None:
        logger.info("checking the schema")

    @task(description="Check the constraints")
    def check_constraints(self) -> None:
        logger.info("checking the constraints")


class MainProcess(ProcessDefinition):
    """Loads, validates through :class:`ValidationProcess`, and saves."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.load_data)
        builder.sub_process(ValidationProcess)
        builder.task(self.save_data)

    def load_data(self) -> None:
        logger.info("loading data")

    def save_data(self) -> None:
        logger.info("saving data")


class ComplexProcess(ProcessDefinition):
    """Batches of ten items, each transformed and then processed concurrently."""

    def get_batches(self, items: list[str], **_: Any) -> Iterator[tuple[dict[str, Any], str]]:
        for i in range(0, len(items), 10):
            batch = items[i : i + 10]
            yield ({"batch": batch}, f"Batch {i // 10}")

    def define_process(self, builder: Builder) -> None:
        builder.task(self.setup)

        for batch_iter in builder.each(self.get_batches):
            with batch_iter.transform(self.prepare_batch) as prepared:  # noqa: SIM117 - as in the guide
                with prepared.concurrent() as b:
                    b.task(self.process_item_a)
                    b.task(self.process_item_b)

        builder.task(self.finalize)

    def setup(self, items: list[str]) -> None:
        logger.info("setting up %d items", len(items))

    def prepare_batch(self, batch: list[str]) -> dict[str, Any]:
        return {"batch": [item.strip().lower() for item in batch], "batch_size": len(batch)}

    def process_item_a(self, batch: list[str], batch_size: int) -> None:
        logger.info("a: %d items, first %s", batch_size, batch[0])

    def process_item_b(self, batch: list[str], context: Context) -> None:
        logger.info(
            "b: %d items at step %s, attempt %d", len(batch), context.path, context.attempt
        )

    @task(description="Finalize")
    def finalize(self, items: list[str]) -> None:
        logger.info("finalized %d items", len(items))


def main() -> None:
    """Build every example with sample arguments and print its tree."""
    samples: list[tuple[type[ProcessDefinition], dict[str, Any]]] = [
        (MyProcess, {}),
        (SequentialProcess, {}),
        (ConcurrentProcess, {}),
        (MixedProcess, {}),
        (
            ProcessWithArguments,
            {"name": "report", "count": "3", "date": "2024-01-31", "tags": ["a"]},
        ),
        (
            ProcessWithSensitiveArguments,
            {"username": "ada", "password": "correct horse", "api_token": "tok-123456"},
        ),
        (ConditionalProcess, {}),
        (IterativeProcess, {"files": ["a.csv", "b.csv"]}),
        (IterativeProcessWithDescriptions, {"files": ["a.csv", "b.csv"]}),
        (TransformingProcess, {"raw_data": "hello"}),
        (TransformingProcessWithDescription, {"item_id": 21}),
        (ValidationProcess, {}),
        (MainProcess, {}),
        (ComplexProcess, {"items": [f"Item {n}" for n in range(25)]}),
    ]
    for definition, arguments in samples:
        print(definition.build(**arguments).render())
        print()


if __name__ == "__main__":
    main()
