"""Sensitive arguments: passed intact to steps, hidden wherever Tasktronaut shows text.

A definition names its sensitive arguments in ``sensitive_arguments``. A name
marked by any definition of a process tree is sensitive for the whole run,
since arguments flow from a process into its sub-processes. Tasktronaut hides
their values in two ways:

- **by name**, where it shows arguments (the ``repr`` of arguments and of a
  ``Context``, validation errors): the value is shown as :data:`MASK`;
- **by value**, in free text (error messages and tracebacks, descriptions in
  the default hooks' logs): every occurrence of ``str(value)`` or
  ``repr(value)`` of a sensitive value, or of each item of a sensitive list,
  tuple, set or dict, becomes :data:`MASK`. Texts shorter than
  :data:`MIN_REDACTED_LENGTH` characters are left alone: hiding every ``"1"``
  or ``""`` would mangle every message while protecting nothing.
"""

from __future__ import annotations

import traceback
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .errors import DefinitionError, RedactedError

MASK = "***"
"""What a hidden value is shown as."""

MIN_REDACTED_LENGTH = 4
"""Shorter texts of sensitive values are not searched for in free text."""


def sensitive_arguments_of(definition: type[Any]) -> frozenset[str]:
    """The argument names ``definition`` marks sensitive; ``DefinitionError`` if malformed."""
    names = definition.sensitive_arguments
    if (
        isinstance(names, (str, bytes))
        or not isinstance(names, Collection)
        or not all(isinstance(name, str) for name in names)
    ):
        raise DefinitionError(
            f"{definition.__qualname__}.sensitive_arguments must be a collection of argument "
            f"names, such as ('password',), not {names!r:.100}"
        )
    return frozenset(names)


def masked(value: Any, names: Collection[str]) -> Any:
    """``value`` with the values under ``names`` in every mapping inside it replaced by the mask."""
    if isinstance(value, Mapping):
        return {k: MASK if k in names else masked(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [masked(item, names) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


class Redactor:
    """Hides the sensitive arguments of one run (or one build) in what is shown of it."""

    __slots__ = ("names", "texts")

    def __init__(self, names: Iterable[str] = (), texts: Iterable[str] = ()) -> None:
        self.names = frozenset(names)
        """The sensitive argument names."""
        self.texts = tuple(sorted(set(texts), key=len, reverse=True))
        """The texts of their values, longest first so a ``repr`` goes before the ``str`` in it."""

    @classmethod
    def of(cls, names: Iterable[str], scopes: Iterable[Mapping[str, Any]]) -> Redactor:
        """The redactor of the values under ``names`` in any of the argument mappings ``scopes``."""
        names = frozenset(names)
        if not names:
            return NO_REDACTION
        texts = {
            text
            for scope in scopes
            for name in names & scope.keys()
            for text in _texts(scope[name])
            if len(text) >= MIN_REDACTED_LENGTH
        }
        return cls(names, texts)

    def __repr__(self) -> str:
        return f"<Redactor of {sorted(self.names)}: {len(self.texts)} texts>"

    def text(self, text: str) -> str:
        """``text`` with every sensitive value in it replaced by the mask."""
        for secret in self.texts:
            text = text.replace(secret, MASK)
        return text

    def shown(self, name: str, value: Any) -> str:
        """How the argument ``name`` with ``value`` is shown: its ``repr``, or the mask."""
        return MASK if name in self.names else self.text(repr(masked(value, self.names)))

    def exception(self, error: BaseException) -> BaseException:
        """``error``, or a :class:`RedactedError` in its place if its traceback shows a secret.

        The stand-in keeps ``error``'s frames but not its chain of causes, any
        of which may show the value too; its message is ``TypeName: message``
        of ``error``, redacted.
        """
        if not self.texts:
            return error
        shown = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        if self.text(shown) == shown:
            return error
        stand_in = RedactedError(self.text(f"{type(error).__name__}: {error}"))
        stand_in.__cause__ = None
        stand_in.__suppress_context__ = True
        return stand_in.with_traceback(error.__traceback__)


NO_REDACTION = Redactor()
"""The redactor of a run without sensitive arguments: it leaves everything as it is."""


def _texts(value: Any) -> Iterator[str]:
    """How ``value`` (or, for a container, each item) may appear in text."""
    if value is None or isinstance(value, bool):
        return  # "None" and "True" are in too many messages to hide
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _texts(item)
        return
    yield str(value)
    yield repr(value)
    if isinstance(value, bytes):
        yield value.decode("utf-8", "replace")


_current: ContextVar[Redactor] = ContextVar("tasktronaut_redactor", default=NO_REDACTION)


@contextmanager
def redacting(redactor: Redactor) -> Iterator[None]:
    """Make ``redactor`` the one :func:`redact` uses for the duration of the block."""
    token = _current.set(redactor)
    try:
        yield
    finally:
        _current.reset(token)


def redact(text: str) -> str:
    """``text`` with the sensitive argument values of the run being worked on hidden.

    Inside a step, ``around_task`` or a lifecycle hook on a worker, it hides
    the run's sensitive values; elsewhere it returns ``text`` unchanged. Use it
    in your own hooks and logs, e.g. ``logger.error("failed: %s", redact(str(e)))``.
    """
    return _current.get().text(text)
