"""The arguments in scope for a step: a read-only mapping layered over its parent's.

``each`` items and ``transform`` results overlay the arguments of the builder
they come from. Keeping the overlay as a layer, rather than a merged copy,
lets a backend store an ``each`` over N items in space proportional to N: the
shared outer arguments are stored once, each item's own values once per item.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from .sensitive import masked


class Arguments(Mapping[str, Any]):
    """``own`` values over those of ``parent``; same keys in ``own`` win.

    Its ``repr`` masks the values of the ``sensitive`` names (by default, its
    parent's): during a build, the names marked by the definitions built so
    far, all of them once the build is done.
    """

    __slots__ = ("_flat", "_own", "_parent", "_sensitive")

    def __init__(
        self,
        own: Mapping[str, Any],
        parent: Arguments | None = None,
        sensitive: Collection[str] | None = None,
    ) -> None:
        self._own = dict(own)
        self._parent = parent
        self._flat: dict[str, Any] | None = None
        if sensitive is None:
            sensitive = frozenset() if parent is None else parent._sensitive
        self._sensitive: Collection[str] = sensitive

    @property
    def own(self) -> Mapping[str, Any]:
        """The values this layer adds or replaces."""
        return self._own

    @property
    def parent(self) -> Arguments | None:
        """The layer underneath, if any."""
        return self._parent

    def overlay(self, values: Mapping[str, Any]) -> Arguments:
        """A new layer with ``values`` over these arguments."""
        return Arguments(values, self) if values else self

    def _merged(self) -> dict[str, Any]:
        if self._flat is None:
            base = self._parent._merged() if self._parent is not None else {}
            self._flat = {**base, **self._own}
        return self._flat

    def __getitem__(self, key: str) -> Any:
        return self._merged()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())

    def __repr__(self) -> str:
        return f"Arguments({masked(self._merged(), self._sensitive)!r})"
