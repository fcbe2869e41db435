"""Runs kept in the Django database through the ORM (result backend ``django-db``).

The algorithm is :class:`~tasktronaut_celery.stores.relational.RelationalRunStore`'s;
this module says how the ORM reads and writes the rows of the app's models.
The algorithm counts time in seconds since the epoch; the models keep
datetimes (aware in UTC, or naive in the project's time zone when ``USE_TZ``
is off), which the admin shows and filters on, converted here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone as django_timezone
from typing_extensions import override

from ...store import RUN_TIMES
from ...stores.relational import Range, RelationalRunStore, Table, Where
from .models import ArrivalRow, ClaimRow, RunRow, SlotRow, StepRow

_MODELS: dict[Table, type[models.Model]] = {
    "runs": RunRow,
    "claims": ClaimRow,
    "steps": StepRow,
    "arrivals": ArrivalRow,
    "slots": SlotRow,
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
        _MODELS[table].objects.create(**_to_columns(row))

    @override
    def _update(self, table: Table, where: Where, values: Mapping[str, Any]) -> int:
        return int(_rows(table, where).update(**_to_columns(values)))

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
        times = [index for index, column in enumerate(columns) if column in RUN_TIMES]
        return [
            _from_columns(row, times) if times else row
            for row in (selected if limit is None else selected[:limit])
        ]

    @override
    def _count(self, table: Table, where: Where) -> int:
        return int(_rows(table, where).count())

    @override
    def _delete(self, table: Table, where: Where) -> int:
        deleted, _ = _rows(table, where).delete()
        return int(deleted)


def _rows(table: Table, where: Where) -> models.QuerySet[Any]:
    """The rows of ``table`` that ``where`` picks."""
    lookups: dict[str, Any] = {}
    for column, value in where.items():
        if isinstance(value, Range):
            if value.low is not None:
                lookups[f"{column}__gte"] = _to_column(column, value.low)
            if value.high is not None:
                lookups[f"{column}__lt"] = _to_column(column, value.high)
        elif isinstance(value, tuple):
            lookups[f"{column}__in"] = value
        else:
            lookups[column] = _to_column(column, value)
    return _MODELS[table].objects.filter(**lookups)


def _to_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as the models keep them: times as datetimes."""
    return {column: _to_column(column, value) for column, value in values.items()}


def _to_column(column: str, value: Any) -> Any:
    """A value of ``column`` as its model keeps it: a time (in seconds) as a datetime."""
    if column not in RUN_TIMES or value is None:
        return value
    moment = datetime.fromtimestamp(value, timezone.utc)
    if settings.USE_TZ:
        return moment
    return django_timezone.make_naive(moment, django_timezone.get_default_timezone())


def _from_columns(row: tuple[Any, ...], times: Sequence[int]) -> tuple[Any, ...]:
    """A row as the algorithm reads it: the datetimes at ``times`` in seconds."""
    values = list(row)
    for index in times:
        moment = values[index]
        if moment is not None:
            if django_timezone.is_naive(moment):  # USE_TZ off: in the project's time zone
                moment = django_timezone.make_aware(moment, django_timezone.get_default_timezone())
            values[index] = moment.timestamp()
    return tuple(values)
