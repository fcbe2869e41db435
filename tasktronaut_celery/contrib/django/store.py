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

from ...stores.relational import Range, RelationalRunStore, Table, Where
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
    def _increment(self, table: Table, where: Where, amounts: Mapping[str, int]) -> int:
        return int(
            _rows(table, where).update(
                **{column: F(column) + by for column, by in amounts.items()}
            )
        )

    @override
    def _touch(self, table: Table, where: Where, column: str) -> int:
        return int(_rows(table, where).update(**{column: F(column)}))

    @override
    def _select(
        self,
        table: Table,
        where: Where,
        columns: Sequence[str],
        *,
        order_by: str | None = None,
        limit: int | None = None,
        lock: bool = False,
    ) -> list[tuple[Any, ...]]:
        rows = _rows(table, where)
        if lock:
            rows = rows.select_for_update()
        if order_by is not None:
            rows = rows.order_by(order_by)
        selected = rows.values_list(*columns)
        return list(selected if limit is None else selected[:limit])

    @override
    def _count(self, table: Table, where: Where) -> int:
        return int(_rows(table, where).count())

    @override
    def _delete(self, table: Table, where: Where) -> None:
        _rows(table, where).delete()


def _rows(table: Table, where: Where) -> models.QuerySet[Any]:
    """The rows of ``table`` that ``where`` picks."""
    lookups: dict[str, Any] = {}
    for column, value in where.items():
        if isinstance(value, Range):
            if value.low is not None:
                lookups[f"{column}__gte"] = value.low
            if value.high is not None:
                lookups[f"{column}__lt"] = value.high
        elif isinstance(value, tuple):
            lookups[f"{column}__in"] = value
        else:
            lookups[column] = value
    return _MODELS[table].objects.filter(**lookups)
