"""Sensitive arguments reach steps intact and are hidden wherever Tasktronaut shows text."""

from __future__ import annotations

import builtins
import dataclasses
import logging
import pickle
import re
import traceback
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from click.testing import CliRunner
from pydantic import AfterValidator

from tasktronaut import (
    Builder,
    Context,
    DefinitionError,
    InvalidArgumentsError,
    InvalidStepError,
    ProcessDefinition,
    RedactedError,
    redact,
)
from tasktronaut.nodes import BlockNode, TaskNode
from tasktronaut.runtime import Outcome, StepCall, call_hook, run_step
from tasktronaut.sensitive import MASK, NO_REDACTION, Redactor
from tasktronaut_celery import ArgumentNotSerializableError
from tasktronaut_celery.cli import main
from tasktronaut_celery.errors import CorruptPlanError
from tasktronaut_celery.plan import Plan, encode_plan, plan_process

SECRET = "hunter2-0a7f"
TOKEN = "tok-5c1d-9e2b"

received: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def _clear_received() -> Iterator[None]:
    received.clear()
    yield
    received.clear()


def _reject_short(value: str) -> str:
    if len(value) < 20:
        raise ValueError(f"{value} is shorter than 20 characters")
    return value


class Login(ProcessDefinition):
    """Marks ``password`` sensitive; its step fails with the value in its message."""

    sensitive_arguments = ("password",)

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(user=str, password=str)
        builder.task(self.log_in, description=f"Log in with {builder.arguments['password']}")

    def log_in(self, user: str, password: str, context: Context) -> None:
        received.append({"password": password, "context": context})
        raise PermissionError(f"{user} may not log in with {password}")


class Partner(ProcessDefinition):
    """A sub-process that marks ``api_token``, which its parent does not mark."""

    sensitive_arguments = frozenset({"api_token"})

    def define_process(self, builder: Builder) -> None:
        builder.task(self.call_partner)

    def call_partner(self, api_token: str) -> None:
        received.append({"api_token": api_token})


class Signup(ProcessDefinition):
    """Marks nothing itself: ``api_token`` is sensitive because ``Partner`` marks it."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.create_account)
        builder.sub_process(Partner)

    def create_account(self, api_token: str) -> None:
        received.append({"api_token": api_token})


class StrictPassword(ProcessDefinition):
    """A validator whose message repeats the value it rejects."""

    sensitive_arguments = ("password",)

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(password=Annotated[str, AfterValidator(_reject_short)])
        builder.task(self.use)

    def use(self, password: str) -> None:
        pass


class BadItems(ProcessDefinition):
    """An ``each`` function yielding a list instead of a dict, holding the secret."""

    sensitive_arguments = ("password",)

    def items(self, password: str) -> list[Any]:
        return [[{"password": password}, "not a description"]]

    def define_process(self, builder: Builder) -> None:
        for item in builder.each(self.items):
            item.task(self.use)

    def use(self) -> None:
        pass


def test_a_string_instead_of_a_collection_of_names_is_refused_with_the_class_name() -> None:
    """``sensitive_arguments = "password"`` would mark single letters; it is a DefinitionError."""
    with pytest.raises(DefinitionError, match=r"Careless\.sensitive_arguments must be a coll"):

        class Careless(ProcessDefinition):
            sensitive_arguments = "password"  # type: ignore[assignment]


def test_a_name_that_is_not_a_string_is_refused_at_build_time() -> None:
    """A malformed attribute set after the class statement is caught when the process is built."""

    class Later(ProcessDefinition):
        def define_process(self, builder: Builder) -> None:
            pass

    Later.sensitive_arguments = ["password", 42]  # type: ignore[list-item]

    with pytest.raises(
        DefinitionError, match=r"Later\.sensitive_arguments .* not \['password', 42\]"
    ):
        Later.build()


def test_a_name_marked_by_a_sub_process_is_sensitive_for_the_whole_process() -> None:
    """The process's sensitive names are the union over its tree."""
    assert Signup.build(api_token=TOKEN).sensitive_arguments == {"api_token"}
    assert Login.build(user="ada", password=SECRET).sensitive_arguments == {"password"}


def test_invalid_arguments_error_masks_a_sensitive_value_by_name() -> None:
    """The ``got ...`` of a sensitive argument is the mask, however short the value."""
    with pytest.raises(InvalidArgumentsError) as raised:
        Login.build(user="ada", password=7)

    assert raised.value.problems["password"].startswith(f"expected str, got {MASK}:")
    assert "7" not in raised.value.problems["password"]


def test_invalid_arguments_error_hides_a_value_a_validator_repeats() -> None:
    """Pydantic's message for a custom validator quotes the input; it is redacted too."""
    with pytest.raises(InvalidArgumentsError) as raised:
        StrictPassword.build(password=SECRET)

    assert SECRET not in str(raised.value)
    assert f"{MASK} is shorter than 20 characters" in str(raised.value)


def test_invalid_arguments_error_hides_a_secret_inside_another_argument() -> None:
    """A non-sensitive argument whose value contains the secret is redacted by value."""
    with pytest.raises(InvalidArgumentsError) as raised:
        Login.build(user=[f"ada:{SECRET}"], password=SECRET)

    assert SECRET not in str(raised.value)
    assert f"got ['ada:{MASK}']" in raised.value.problems["user"]


def test_a_malformed_each_item_is_shown_with_its_sensitive_keys_masked() -> None:
    """The refused item is shown, but not the value under a sensitive key."""
    with pytest.raises(InvalidStepError, match="must be a dict of arguments") as raised:
        BadItems.build(password=SECRET)

    assert SECRET not in str(raised.value)
    assert f"'password': '{MASK}'" in str(raised.value)


def test_the_repr_of_a_process_and_its_arguments_masks_sensitive_values() -> None:
    """Nodes show their arguments; a sensitive one as the mask, even one marked by a sub-process."""
    process = Signup.build(api_token=TOKEN)

    assert TOKEN not in repr(process)
    assert f"'api_token': '{MASK}'" in repr(process.root.arguments)


@pytest.mark.parametrize("picture", ["render", "to_mermaid", "to_dot"])
def test_pictures_of_a_process_hide_a_secret_in_its_descriptions(picture: str) -> None:
    """A description that quotes a sensitive value is shown redacted."""
    process = Login.build(user="ada", password=SECRET)

    shown = getattr(process, picture)()

    assert SECRET not in shown
    assert f"Log in with {MASK}" in shown


def test_cli_show_and_a_failed_build_hide_the_secret() -> None:
    """``tasktronaut show`` and the one-paragraph build error of ``run`` never print it."""
    runner = CliRunner()
    reference = f"{__name__}:Login"

    shown = runner.invoke(main, ["show", reference, "user=ada", f"password={SECRET}"])
    failed = runner.invoke(main, ["run", reference, f'user=["{SECRET}"]', f"password={SECRET}"])

    assert shown.exit_code == 0, shown.output
    assert f"Log in with {MASK}" in shown.output
    assert failed.exit_code == 2
    assert "invalid argument" in failed.output
    assert SECRET not in shown.output + failed.output


def _login_call(redactor: Redactor) -> StepCall:
    return StepCall(
        process_id="run-1",
        definition=Login,
        method="log_in",
        path="0",
        description="Log in",
        arguments={"user": "ada", "password": SECRET},
        attempt=1,
        redactor=redactor,
    )


def test_a_step_receives_the_real_value_and_its_context_repr_masks_it() -> None:
    """The method gets the secret; ``repr(context)`` and ``repr(context.kwargs)`` do not show it."""
    redactor = Redactor.of({"password"}, [{"password": SECRET}])

    result = run_step(_login_call(redactor))

    assert result.outcome is Outcome.RETRYABLE
    assert received[0]["password"] == SECRET
    context = received[0]["context"]
    assert context.kwargs["password"] == SECRET
    assert SECRET not in repr(context)
    assert f"'password': '{MASK}'" in repr(context.kwargs)


def test_the_error_a_step_raised_is_the_original() -> None:
    """The runtime classifies the real exception: hooks get it unredacted."""
    redactor = Redactor.of({"password"}, [{"password": SECRET}])

    result = run_step(_login_call(redactor))

    assert isinstance(result.error, PermissionError)
    assert SECRET in str(result.error)


def test_default_hooks_log_descriptions_and_errors_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """around_task's log of the description and on_failed's log of the error hide the secret."""
    redactor = Redactor.of({"password"}, [{"password": SECRET}])
    call = dataclasses.replace(_login_call(redactor), description=SECRET)

    with caplog.at_level(logging.INFO, logger="tasktronaut"):
        result = run_step(call)
        assert result.error is not None
        call_hook(Login, "on_failed", "run-1", "log_in", result.error, redactor=redactor)

    assert f"Executing {MASK} (log_in)" in caplog.text
    assert f"may not log in with {MASK}" in caplog.text
    assert SECRET not in caplog.text


class _HookRaises(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        pass

    def on_failed(self, identifier: str, step: str, e: Exception) -> None:
        raise RuntimeError(f"could not report {e}")


def test_an_error_raised_by_on_failed_is_logged_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """call_hook logs the hook's own error and traceback without the secret."""
    redactor = Redactor.of({"password"}, [{"password": SECRET}])

    call_hook(_HookRaises, "on_failed", "run-1", "x", ValueError(SECRET), redactor=redactor)

    assert "_HookRaises.on_failed raised" in caplog.text
    assert "RedactedError: RuntimeError: could not report ***" in caplog.text
    assert SECRET not in caplog.text


def test_redact_hides_the_run_s_values_only_while_its_step_runs() -> None:
    """``tasktronaut.redact`` uses the redactor of the step being run, and none elsewhere."""
    seen: list[str] = []

    class UsesRedact(ProcessDefinition):
        def define_process(self, builder: Builder) -> None:
            builder.task(self.report)

        def report(self, password: str) -> None:
            seen.append(redact(f"using {password}"))

    redactor = Redactor.of({"password"}, [{"password": SECRET}])
    run_step(StepCall("run-1", UsesRedact, "report", "0", None, {"password": SECRET}, 1, redactor))

    assert seen == [f"using {MASK}"]
    assert redact(f"using {SECRET}") == f"using {SECRET}"


def test_values_shorter_than_the_minimum_are_not_searched_for() -> None:
    """Hiding ``"ab"`` or ``""`` in free text would mangle messages; by name they are masked."""
    redactor = Redactor.of({"pin"}, [{"pin": "ab"}, {"pin": ""}])

    assert redactor.text("tab stop") == "tab stop"
    assert redactor.shown("pin", "ab") == MASK


def test_texts_of_numbers_bytes_and_containers_are_hidden_but_not_none_or_booleans() -> None:
    """Each item of a sensitive list or dict, a number's digits and bytes' text are hidden."""
    scope = {"keys": ["alpha-key", {"nested": "beta-key"}], "pin": 987654, "raw": b"gamma-key"}
    redactor = Redactor.of({"keys", "pin", "raw", "flag", "none"}, [scope, {"flag": True}])

    text = "alpha-key beta-key 987654 gamma-key b'gamma-key' True None"

    assert redactor.text(text) == "*** *** *** *** *** True None"


def test_no_redaction_without_sensitive_names() -> None:
    """A process that marks nothing gets the redactor that changes nothing."""
    assert Redactor.of((), [{"password": SECRET}]) is NO_REDACTION
    assert NO_REDACTION.text(SECRET) == SECRET


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def test_an_exception_without_the_secret_is_kept_as_it_is() -> None:
    """Only an exception that shows a secret is replaced."""
    redactor = Redactor.of({"password"}, [{"password": SECRET}])
    error = ValueError("nothing to hide")

    assert redactor.exception(error) is error


def test_an_exception_showing_the_secret_is_replaced_by_a_redacted_stand_in() -> None:
    """The stand-in names the original type, hides the value, keeps the frames and pickles."""
    redactor = Redactor.of({"password"}, [{"password": SECRET}])
    error = _raised(PermissionError(f"bad password {SECRET}"))

    stand_in = redactor.exception(error)

    assert isinstance(stand_in, RedactedError)
    assert str(stand_in) == f"PermissionError: bad password {MASK}"
    assert stand_in.__traceback__ is error.__traceback__
    assert str(pickle.loads(pickle.dumps(stand_in))) == str(stand_in)


def test_a_secret_only_in_the_cause_of_an_exception_is_not_shown_either() -> None:
    """Tracebacks print the chain of causes; the stand-in drops it, even once raised in a handler."""
    redactor = Redactor.of({"password"}, [{"password": SECRET}])
    try:
        try:
            raise LookupError(f"no user with password {SECRET}")
        except LookupError as cause:
            raise RuntimeError("login failed") from cause
    except RuntimeError as error:
        try:
            raise redactor.exception(error)
        except RedactedError as stand_in:
            shown = "".join(
                traceback.format_exception(type(stand_in), stand_in, stand_in.__traceback__)
            )

    assert "RedactedError: RuntimeError: login failed" in shown
    assert SECRET not in shown


def test_plan_keeps_the_sensitive_names_and_hides_values_of_every_scope() -> None:
    """Names survive storage; values from any scope, sub-process included, are redacted."""
    plan = plan_process(Signup.build(api_token=TOKEN))

    restored = Plan.from_data(plan.to_data())

    assert restored.sensitive_arguments == {"api_token"}
    assert restored.redactor.text(f"token {TOKEN}") == f"token {MASK}"
    assert TOKEN not in repr(restored.steps["0"])


def test_a_plan_stored_without_sensitive_names_still_reads() -> None:
    """Plans written before sensitive arguments existed have none."""
    data = plan_process(Signup.build(api_token=TOKEN)).to_data()
    del data["sensitive"]

    assert Plan.from_data(data).sensitive_arguments == frozenset()


def test_a_plan_with_malformed_sensitive_names_is_corrupt() -> None:
    """Names that are not strings make the stored plan unreadable, not half-read."""
    data = plan_process(Signup.build(api_token=TOKEN)).to_data()
    data["sensitive"] = [1]

    with pytest.raises(CorruptPlanError):
        Plan.from_data(data)


class _SaysItsValue:
    def __init__(self, value: str) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle the token {self.value}")


class Unserializable(ProcessDefinition):
    """A step argument that cannot be encoded, whose encoding error quotes a sensitive value."""

    sensitive_arguments = ("api_token",)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.use)

    def use(self, api_token: str, client: Any) -> None:
        pass


def test_argument_not_serializable_error_hides_the_secret() -> None:
    """The serializer's own message is redacted before it reaches the error."""
    process = Unserializable.build(api_token=TOKEN, client=_SaysItsValue(TOKEN))

    with pytest.raises(ArgumentNotSerializableError) as raised:
        encode_plan(plan_process(process), "pickle")

    assert "cannot pickle the token ***" in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_the_encoded_plan_s_repr_leaves_out_its_body() -> None:
    """The stored body holds the real values, so its repr does not show it."""
    encoded = encode_plan(plan_process(Signup.build(api_token=TOKEN)), "json")

    assert TOKEN in encoded.body.decode()
    assert TOKEN not in repr(encoded)


def test_a_value_under_a_sensitive_name_at_any_depth_is_searched_for_in_text() -> None:
    """``masked`` hides a nested sensitive key by name; its value is hidden in free text too."""
    scope = {
        "account": {"user": "ada-lovelace", "password": "hunter22"},
        "accounts": [{"password": ["nested-pw-1", {"deeper": "nested-pw-2"}]}],
        "tuples": ({"password": 987654},),
    }
    redactor = Redactor.of({"password"}, [scope])

    shown = redactor.text("hunter22 nested-pw-1 nested-pw-2 987654 ada-lovelace")

    assert shown == "*** *** *** *** ada-lovelace"


def test_an_error_quoting_a_nested_sensitive_value_is_replaced() -> None:
    """A step's error that quotes ``account["password"]`` reaches Celery as a RedactedError."""
    redactor = Redactor.of({"password"}, [{"account": {"password": SECRET}}])

    stand_in = redactor.exception(_raised(PermissionError(f"refused {SECRET}")))

    assert isinstance(stand_in, RedactedError)
    assert str(stand_in) == f"PermissionError: refused {MASK}"


def test_reprs_of_a_process_its_nodes_and_a_context_leave_out_descriptions() -> None:
    """Descriptions may be built from sensitive values; no repr shows them."""
    process = Login.build(user="ada", password=SECRET)
    step = process.root.children[0]
    redactor = Redactor.of({"password"}, [{"password": SECRET}])
    call = dataclasses.replace(_login_call(redactor), description=f"Log in {SECRET}")

    run_step(call)
    shown_context = repr(received[0]["context"])

    assert isinstance(step, TaskNode)
    assert step.description == f"Log in with {SECRET}"
    assert SECRET not in repr(process) + repr(step) + shown_context
    assert "description" not in repr(step) + shown_context


def test_the_repr_of_a_block_and_of_a_planned_step_leave_out_descriptions() -> None:
    """A block's description and a planned step's may quote a secret too."""

    class Blocks(ProcessDefinition):
        sensitive_arguments = ("password",)

        def define_process(self, builder: Builder) -> None:
            with builder.sequential(description=f"as {builder.arguments['password']}") as block:
                block.task(self.use, description=f"use {builder.arguments['password']}")

        def use(self) -> None:
            pass

    process = Blocks.build(password=SECRET)
    block = process.root.children[0]
    planned = plan_process(process).steps["0.0"]

    assert isinstance(block, BlockNode)
    assert block.description == f"as {SECRET}"
    assert planned.description == f"use {SECRET}"
    assert SECRET not in repr(block) + repr(planned)


def test_code_and_file_paths_in_a_traceback_are_not_searched() -> None:
    """Short secrets such as ``"self"`` or ``"unit"`` match frames' source and paths, not values."""
    redactor = Redactor.of({"word"}, [{"word": ["unit", "raise", "caught", "Permission"]}])
    error = _raised(PermissionError("nothing to hide"))

    assert "unit" in "".join(traceback.format_exception(error))
    assert redactor.exception(error) is error


def test_a_secret_in_the_context_or_a_note_of_an_exception_is_found() -> None:
    """What a traceback prints besides frames is searched: context, notes, group members.

    A context suppressed by ``raise ... from None`` is not printed, so it is not searched.
    """
    redactor = Redactor.of({"password"}, [{"password": SECRET}])
    try:
        try:
            raise LookupError(SECRET)
        except LookupError:
            raise RuntimeError("login failed") from None
    except RuntimeError as suppressed:
        in_suppressed_context = suppressed
    try:
        try:
            raise LookupError(SECRET)
        except LookupError:
            raise RuntimeError("login failed")  # noqa: B904 - the implicit context is the point
    except RuntimeError as chained:
        in_context = chained
    noted = _raised(ValueError("bad input"))
    if hasattr(noted, "add_note"):  # Python 3.11+
        noted.add_note(f"while checking {SECRET}")
        assert isinstance(redactor.exception(noted), RedactedError)

    group_type = getattr(builtins, "ExceptionGroup", None)  # Python 3.11+
    if group_type is not None:
        group = _raised(group_type("several", [ValueError("fine"), KeyError(SECRET)]))
        assert isinstance(redactor.exception(group), RedactedError)

    assert isinstance(redactor.exception(in_context), RedactedError)
    assert redactor.exception(in_suppressed_context) is in_suppressed_context


def test_texts_are_found_with_one_precompiled_pattern_longest_first() -> None:
    """One regex, compiled once per redactor, replaces every text in a single pass, literally."""
    redactor = Redactor.of({"pw"}, [{"pw": ["a.b*c+", "a.b*c+-longer"]}])

    assert redactor.pattern is not None
    assert redactor.pattern.pattern.startswith(re.escape("'a.b*c+-longer'"))
    assert redactor.text("a.b*c+-longer a.b*c+ aXbbc") == f"{MASK} {MASK} aXbbc"
    assert NO_REDACTION.pattern is None
