"""Runs kept in the Django database through the ORM (result backend ``django-db``).

The algorithm is :class:`~tasktronaut_celery.stores.relational.RelationalRunStore`'s;
this module says how the ORM reads and writes the rows of the app's models.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import F
from typing_extensions import override

from ...stores.relational import RelationalRunStore, Table, Where
from .models import ArrivalRow, ClaimRow, RunRow, StepRow

_MODELS: dict[Table, type[models.Model]] = {
    "runs": RunRow,
    "claims": ClaimRow,
    "steps": StepRow,
    "arrivals": ArrivalRow,
}


class DjangoRunStore(RelationalRunStore):
    """A store on Django models; once-only changes rely on unique constraints."""

    _conflict = IntegrityError

    @override
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with transaction.atomic():
            yield

    @override
    def _insert(self, table: Table, row: Mapping[str, Any]) -> None:
        _MODELS[table].objects.create(**row)

    @override
    def _update(self, table: Table, where: Where, values: Mapping[str, Any]) -> int:
        return int(_rows(table, where).update(**values))

    @override
    def _touch(self, table: Table, where: Where, column: str) -> int:
        return int(_rows(table, where).update(**{column: F(column)}))

    @override
    def _select(self, table: Table, where: Where, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        return list(_rows(table, where).values_list(*columns))

    @override
    def _count(self, table: Table, where: Where) -> int:
        return int(_rows(table, where).count())

    @override
    def _delete(self, table: Table, where: Where) -> None:
        _rows(table, where).delete()


def _rows(table: Table, where: Where) -> models.QuerySet[Any]:
    """The rows of ``table`` that ``where`` picks."""
    return _MODELS[table].objects.filter(
        **{
            f"{column}__in" if isinstance(value, tuple) else column: value
            for column, value in where.items()
        }
    )
