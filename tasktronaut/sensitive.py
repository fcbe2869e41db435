"""Sensitive arguments: passed intact to steps, hidden wherever Tasktronaut shows text.

A definition names its sensitive arguments in ``sensitive_arguments``. A name
marked by any definition of a process tree is sensitive for the whole run,
since arguments flow from a process into its sub-processes. Tasktronaut hides
their values in two ways:

- **by name**, where it shows arguments (the ``repr`` of arguments and of a
  ``Context``, validation errors): the value is shown as :data:`MASK`;
- **by value**, in free text (the messages of exceptions, descriptions in
  the default hooks' logs): every occurrence of ``str(value)`` or
  ``repr(value)`` of a sensitive value, or of each item of a sensitive list,
  tuple, set or dict, becomes :data:`MASK`. The values are those under a
  sensitive name at any depth, in the arguments or in a dict, list or tuple
  inside them, as :func:`masked` finds them. Texts shorter than
  :data:`MIN_REDACTED_LENGTH` characters are left alone: hiding every ``"1"``
  or ``""`` would mangle every message while protecting nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
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

    __slots__ = ("names", "pattern", "texts")

    def __init__(self, names: Iterable[str] = (), texts: Iterable[str] = ()) -> None:
        self.names = frozenset(names)
        """The sensitive argument names."""
        self.texts = tuple(sorted(set(texts), key=len, reverse=True))
        """The texts of their values, longest first so a ``repr`` goes before the ``str`` in it."""
        self.pattern = re.compile("|".join(map(re.escape, self.texts))) if self.texts else None
        """One alternation of :attr:`texts`, in their order, compiled once: :meth:`text` runs
        on every description and error, so it makes one pass whatever the number of texts."""

    @classmethod
    def of(cls, names: Iterable[str], scopes: Iterable[Mapping[str, Any]]) -> Redactor:
        """The redactor of the values under ``names`` in any of the argument mappings ``scopes``.

        A name is found at any depth, as :func:`masked` finds it: in a scope
        and in every dict, list or tuple inside it, so the value of
        ``account={"password": ...}`` is searched for as well as its mask is shown.
        """
        names = frozenset(names)
        if not names:
            return NO_REDACTION
        texts = {
            text
            for scope in scopes
            for value in _values_under(scope, names, set())
            for text in _texts(value)
            if len(text) >= MIN_REDACTED_LENGTH
        }
        return cls(names, texts)

    def __repr__(self) -> str:
        return f"<Redactor of {sorted(self.names)}: {len(self.texts)} texts>"

    def text(self, text: str) -> str:
        """``text`` with every sensitive value in it replaced by the mask."""
        return text if self.pattern is None else self.pattern.sub(MASK, text)

    def shown(self, name: str, value: Any) -> str:
        """How the argument ``name`` with ``value`` is shown: its ``repr``, or the mask."""
        return MASK if name in self.names else self.text(repr(masked(value, self.names)))

    def exception(self, error: BaseException) -> BaseException:
        """``error``, or a :class:`RedactedError` in its place if its messages show a secret.

        The messages are those a traceback prints of ``error``, of the
        exceptions chained to it as cause or (unsuppressed) context, of the
        members of an exception group, and their notes. Frames are not
        searched: their file paths and source lines are code, not values, and
        a short secret such as ``"self"`` would match them in every traceback.

        The stand-in keeps ``error``'s frames but not its chain of causes, any
        of which may show the value too; its message is ``TypeName: message``
        of ``error``, redacted.
        """
        if self.pattern is None:
            return error
        if not any(self.pattern.search(message) for message in _messages(error, set())):
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


def _values_under(value: Any, names: frozenset[str], seen: set[int]) -> Iterator[Any]:
    """The values under ``names`` in every mapping inside ``value``, walked as :func:`masked` does.

    ``seen`` holds the ids of the containers walked so far, so that one that
    contains itself is walked once.
    """
    if not isinstance(value, (Mapping, list, tuple)) or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in names:
                yield item  # _texts takes every text inside it
            else:
                yield from _values_under(item, names, seen)
    else:
        for item in value:
            yield from _values_under(item, names, seen)


def _messages(error: BaseException, seen: set[int]) -> Iterator[str]:
    """What a traceback of ``error`` prints besides its frames: every message and note.

    Covers the exceptions chained to it as a traceback follows them (the
    cause, else the context unless ``raise ... from None`` suppressed it) and
    the members of an exception group. ``seen`` guards against chains that loop.
    """
    if id(error) in seen:
        return
    seen.add(id(error))
    yield _safe(str, error)
    shown = _safe(repr, error)  # what Celery's events show, minus the type's name
    yield shown.removeprefix(type(error).__name__)
    for note in getattr(error, "__notes__", None) or ():
        yield _safe(str, note)
    members = getattr(error, "exceptions", None)  # BaseExceptionGroup, Python 3.11+
    if isinstance(members, (list, tuple)):
        for member in members:
            if isinstance(member, BaseException):
                yield from _messages(member, seen)
    if error.__cause__ is not None:
        yield from _messages(error.__cause__, seen)
    elif error.__context__ is not None and not error.__suppress_context__:
        yield from _messages(error.__context__, seen)


def _safe(show: Callable[[Any], object], value: Any) -> str:
    """``show(value)``, or ``""`` if it fails; traceback prints a placeholder instead."""
    try:
        return str(show(value))
    except Exception:
        return ""


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
