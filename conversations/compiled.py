"""Queries on the way to every first token, built by the ORM once and then only run.

Timed on this project's 2-core machine, Django's ORM took about 1.4 ms to build the SQL of
the turn's lock query on a worker just woken (0.4 ms when busy), and 0.4 ms to run it; a
message sent after a pause pays the first figure, three or four times before Ollama is asked
(docs/performance.md). A ``CompiledQuery`` is built from its queryset the first time it runs
on a database connection's alias and vendor, then runs that SQL again with new parameters and
the ORM's own converters. The SQL is still the ORM's: a renamed field or table changes it,
and tests/test_compiled.py compares each query's results with its queryset's on SQLite and
PostgreSQL.

Only for querysets whose one varying value is the key they are built for (an id): anything
else in the SQL stays as it was the first time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model, Q, QuerySet
from django.db.models.sql import UpdateQuery
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=Model)

# Built into the queryset where the key goes, to find its place among the parameters: a value
# no query here otherwise uses (an int, as ids are; True, which equals 1, is no such value).
_KEY = -7_295_113_409


@dataclass(frozen=True)
class _Statement:
    sql: str
    params: tuple[Any, ...]
    key_positions: tuple[int, ...]
    compiler: SQLCompiler
    using: str
    converters: dict[int, Any]
    # Which columns make which model instance (the compiler's own map), None for values.
    klass_info: dict[str, Any] | None
    # Each column's field (its attribute name), for model instances.
    attnames: tuple[str, ...]


class CompiledQuery(Generic[M]):
    """``build(key)`` gives the queryset; ``rows(key)`` and ``instances(key)`` run it."""

    def __init__(self, build: Callable[[int], QuerySet[M, Any]]) -> None:
        self._build = build
        self._statements: dict[tuple[str, str], _Statement] = {}

    def rows(self, key: int, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple[Any, ...]]:
        """The rows, their values converted as the queryset's own would be."""
        statement = self._statement(using)
        params = list(statement.params)
        for position in statement.key_positions:
            params[position] = key
        with connections[using].cursor() as cursor:
            cursor.execute(statement.sql, params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
        if not statement.converters:
            return rows
        converted = statement.compiler.apply_converters(rows, statement.converters)
        return [tuple(row) for row in converted]

    def instances(self, key: int, *, using: str = DEFAULT_DB_ALIAS) -> list[M]:
        """The rows as model instances, loaded as the queryset loads them (``from_db``),
        with the objects of its ``select_related`` (one level) in their fields' caches."""
        statement = self._statement(using)
        if statement.klass_info is None:
            raise TypeError("the queryset selects values, not model instances")
        return [
            _instance(statement, statement.klass_info, row) for row in self.rows(key, using=using)
        ]

    def _statement(self, using: str) -> _Statement:
        connection = connections[using]
        cache_key = (using, connection.vendor)
        statement = self._statements.get(cache_key)
        if statement is None:
            statement = self._statements[cache_key] = self._compile(using)
        return statement

    def _compile(self, using: str) -> _Statement:
        queryset = self._build(_KEY)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        key_positions = tuple(
            i for i, value in enumerate(params) if type(value) is int and value == _KEY
        )
        if not key_positions:
            raise ValueError("the queryset does not use its key")
        columns = [column for column, _sql, _alias in compiler.select]
        return _Statement(
            sql=sql,
            params=tuple(params),
            key_positions=key_positions,
            compiler=compiler,
            using=using,
            converters=compiler.get_converters(columns),
            # A values() queryset has a map too: its rows are not instances.
            klass_info=None if queryset.query.values_select else compiler.klass_info,
            attnames=tuple(getattr(getattr(c, "target", None), "attname", "") for c in columns),
        )


class CompiledUpdate:
    """Some fields of one row, by id (and ``where``, a fixed condition), saved with the SQL the
    ORM builds for ``Model.objects.filter(where, pk=id).update(...)`` for the same fields,
    built once. As that update does, it sends no signals and sets no ``auto_now`` field."""

    def __init__(self, model: type[Model], *, where: Q | None = None) -> None:
        self._model = model
        self._where = where
        # Per database, fields and which values are NULL (written into the SQL, not passed):
        # the SQL, the condition's parameters, and where the id goes among them.
        self._statements: dict[tuple[Any, ...], tuple[str, list[Any], int]] = {}

    def run(self, pk: int, values: Mapping[str, Any], *, using: str = DEFAULT_DB_ALIAS) -> int:
        """How many rows were updated (0: the row is gone, or does not meet ``where``)."""
        connection = connections[using]
        names = tuple(values)
        fields: list[Field[Any, Any]] = [self._model._meta.get_field(n) for n in names]  # type: ignore[misc]
        prepared = [f.get_db_prep_save(values[f.name], connection) for f in fields]
        nulls = tuple(value is None for value in prepared)
        params = [value for value in prepared if value is not None]
        cache_key = (using, connection.vendor, names, nulls)
        statement = self._statements.get(cache_key)
        if statement is None:
            statement = self._statements[cache_key] = self._compile(values, using, params)
        sql, condition, key_position = statement
        condition = list(condition)
        condition[key_position] = pk
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, *condition])
            return int(cursor.rowcount)

    def _compile(
        self, values: Mapping[str, Any], using: str, params: list[Any]
    ) -> tuple[str, list[Any], int]:
        if any(hasattr(value, "resolve_expression") for value in values.values()):
            raise ValueError("an expression cannot be compiled: it is part of the SQL")
        query = UpdateQuery(self._model)
        query.add_update_values(dict(values))
        query.add_q(Q(pk=_KEY) & self._where if self._where is not None else Q(pk=_KEY))
        sql, compiled_params = query.get_compiler(using=using).as_sql()
        # The values' parameters first, in order, as this call prepared them (a NULL is written
        # into the SQL), then the condition's, the id among them.
        condition = list(compiled_params[len(params) :])
        key_positions = [i for i, v in enumerate(condition) if type(v) is int and v == _KEY]
        if list(compiled_params[: len(params)]) != params or len(key_positions) != 1:
            raise ValueError("the update's parameters are not its values and the id")
        return str(sql), condition, key_positions[0]


def _instance(statement: _Statement, klass_info: dict[str, Any], row: tuple[Any, ...]) -> Any:
    """One model instance of ``row`` (as Django's ``RelatedPopulator`` makes them)."""
    positions = klass_info["select_fields"]
    model = klass_info["model"]
    if row[positions[0]] is None and klass_info.get("field") is not None:
        return None  # a nullable relation that is null: the left join found nothing
    instance = model.from_db(
        statement.using,
        [statement.attnames[i] for i in positions],
        [row[i] for i in positions],
    )
    for related in klass_info.get("related_klass_infos", ()):
        if related.get("related_klass_infos") or related.get("reverse"):
            raise TypeError("only one level of forward select_related is supported")
        obj = _instance(statement, related, row)
        related["local_setter"](instance, obj)
        if obj is not None:
            related["remote_setter"](obj, instance)
    return instance
