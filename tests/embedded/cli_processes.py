"""Process definitions the command-line tests run on the embedded default."""

from __future__ import annotations

import time

from tasktronaut import Builder, Context, ProcessDefinition, TaskOptions

# Long enough for the live progress (polled every 0.2 s) to see each state on a busy machine.
ATTEMPT_SECONDS = 1.0
RETRY_DELAY = 1.0


class RetriesSlowly(ProcessDefinition):
    """A step that fails twice, each attempt and each wait long enough to be seen live."""

    task_options = TaskOptions(default_retry_delay=RETRY_DELAY)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.call_partner, max_retries=3, description="Calling the partner")

    def call_partner(self, context: Context) -> None:
        if context.attempt > 1:
            time.sleep(ATTEMPT_SECONDS)
        if context.attempt < 3:
            raise ConnectionError(f"attempt {context.attempt} failed")


class CompletesBadly(ProcessDefinition):
    """Every step succeeds; the process's own ``on_completed`` raises."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.work)

    def work(self) -> None:
        pass

    def on_completed(self, identifier: str) -> None:
        raise ValueError("the report could not be filed")


class StartsBadly(ProcessDefinition):
    """A sub-process whose ``on_started`` raises before its step runs."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.work)

    def work(self) -> None:
        pass

    def on_started(self, identifier: str) -> None:
        raise ValueError("no partner session")


class OuterOfStartsBadly(ProcessDefinition):
    """A step, then the sub-process whose ``on_started`` raises."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.prepare)
        builder.sub_process(StartsBadly)

    def prepare(self) -> None:
        pass
