"""Queries on the way to every first token, built by the ORM once and then only run.

Timed on this project's 2-core machine, Django's ORM took about 1.4 ms to build the SQL of
the turn's lock query on a worker just woken (0.4 ms when busy), and 0.4 ms to run it; a
message sent after a pause pays the first figure, three or four times before Ollama is asked
(docs/performance.md). A ``CompiledQuery`` is built from its queryset the first time it runs
on a database connection's alias and vendor, then runs that SQL again with new parameters and
the ORM's own converters. ``CompiledUpdate`` does the same for an update of some fields of one
row. The SQL is still the ORM's: a renamed field or table changes it, and
tests/test_compiled.py compares each query's results with its queryset's on SQLite and
PostgreSQL.

Only for querysets whose one varying value is the key they are built for: an id of a 64-bit
field (``BigAutoField``, the project's default), since the value built in to find its place
is one no 32-bit or positive field accepts. Anything else in the SQL stays as it was the
first time.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model, Q, QuerySet
from django.db.models.expressions import Expression
from django.db.models.sql import UpdateQuery
from django.db.transaction import TransactionManagementError

M = TypeVar("M", bound=Model)

# Built into the queryset where the key goes, to find its place among the parameters: a value
# no query here otherwise uses (an int, as ids are, negative and beyond 32 bits).
_KEY = -7_295_113_409


def _is_key(value: Any) -> bool:
    return type(value) is int and value == _KEY


@dataclass
class _Statement:
    sql: str
    params: tuple[Any, ...]
    key_positions: tuple[int, ...]
    using: str
    # Whether it locks rows (SELECT … FOR UPDATE): only inside a transaction, as Django checks.
    locks: bool
    columns: list[Expression]
    # Which columns make which model instance (the compiler's own map), None for values.
    klass_info: dict[str, Any] | None
    # Each column's field (its attribute name), for model instances.
    attnames: tuple[str, ...]
    # The converters of each connection that ran it (a converter may read its connection's
    # settings): kept only as long as the connection, which may be a request thread's.
    converters: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[int, Any]] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def converters_for(self, connection: BaseDatabaseWrapper) -> dict[int, Any]:
        """As Django's ``SQLCompiler.get_converters``, for this connection."""
        converters = self.converters.get(connection)
        if converters is None:
            converters = {}
            for i, column in enumerate(self.columns):
                found = connection.ops.get_db_converters(column) + column.get_db_converters(
                    connection
                )
                if found:
                    converters[i] = (found, column)
            self.converters[connection] = converters
        return converters


class CompiledQuery(Generic[M]):
    """``build(key)`` gives the queryset; ``rows(key)`` and ``instances(key)`` run it."""

    def __init__(self, build: Callable[[int], QuerySet[M, Any]]) -> None:
        self._build = build
        self._statements: dict[tuple[str, str], _Statement] = {}

    def rows(self, key: int, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple[Any, ...]]:
        """The rows, their values converted as the queryset's own would be."""
        connection = connections[using]
        statement = self._statement(using)
        if statement.locks and connection.get_autocommit():
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        params = list(statement.params)
        for position in statement.key_positions:
            params[position] = key
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
        converters = statement.converters_for(connection)
        if not converters:
            return rows
        converted = []
        for row in rows:
            values = list(row)
            for position, (functions, column) in converters.items():
                value = values[position]
                for function in functions:
                    value = function(value, column, connection)
                values[position] = value
            converted.append(tuple(values))
        return converted

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
        cache_key = (using, connections[using].vendor)
        statement = self._statements.get(cache_key)
        if statement is None:
            statement = self._statements[cache_key] = self._compile(using)
        return statement

    def _compile(self, using: str) -> _Statement:
        queryset = self._build(_KEY)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        key_positions = tuple(i for i, value in enumerate(params) if _is_key(value))
        if not key_positions:
            raise ValueError("the queryset does not use its key")
        if compiler.has_extra_select:  # columns the rows would carry for ordering only
            raise ValueError("the queryset orders by what it does not select")
        columns = [column for column, _sql, _alias in compiler.select]
        klass_info = None if queryset.query.values_select else compiler.klass_info
        if klass_info is not None:
            _check_one_level(klass_info)
        return _Statement(
            sql=sql,
            params=tuple(params),
            key_positions=key_positions,
            using=using,
            locks=bool(queryset.query.select_for_update)
            and connections[using].features.has_select_for_update,
            columns=columns,
            # A values() queryset has a map too: its rows are not instances.
            klass_info=klass_info,
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
        if any(hasattr(value, "resolve_expression") for value in values.values()):
            raise ValueError("an expression cannot be compiled: it is part of the SQL")
        connection = connections[using]
        names = tuple(values)
        prepared = [self._prepared(name, value, connection) for name, value in values.items()]
        nulls = tuple(value is None for value in prepared)
        params = [value for value in prepared if value is not None]
        cache_key = (using, connection.vendor, names, nulls)
        statement = self._statements.get(cache_key)
        if statement is None:
            statement = self._statements[cache_key] = self._compile(values, using, len(params))
        sql, condition, key_position = statement
        condition = list(condition)
        condition[key_position] = pk
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, *condition])
            return int(cursor.rowcount)

    def _prepared(self, name: str, value: Any, connection: BaseDatabaseWrapper) -> Any:
        """The value as the update's compiler passes it (an object for a foreign key)."""
        model_field: Field[Any, Any] = self._model._meta.get_field(name)  # type: ignore[assignment]
        if hasattr(value, "prepare_database_save"):
            value = value.prepare_database_save(model_field)
        return model_field.get_db_prep_save(value, connection)

    def _compile(
        self, values: Mapping[str, Any], using: str, value_count: int
    ) -> tuple[str, list[Any], int]:
        condition_q = Q(pk=_KEY) & self._where if self._where is not None else Q(pk=_KEY)
        query = UpdateQuery(self._model)
        query.add_update_values(dict(values))
        query.add_q(condition_q)
        sql, compiled = query.get_compiler(using=using).as_sql()
        # The values' parameters first, in order (a NULL is written into the SQL, not passed),
        # then the condition's, the id among them: as many as the condition has alone.
        alone = self._model._default_manager.filter(condition_q).query
        condition_count = len(alone.get_compiler(using=using).as_sql()[1])
        condition = list(compiled[value_count:])
        key_positions = [i for i, value in enumerate(condition) if _is_key(value)]
        if len(compiled) != value_count + condition_count or len(key_positions) != 1:
            raise ValueError("the update's parameters are not its values and the condition's")
        return str(sql), condition, key_positions[0]


def _check_one_level(klass_info: dict[str, Any]) -> None:
    for related in klass_info.get("related_klass_infos", ()):
        if related.get("related_klass_infos") or related.get("reverse"):
            raise ValueError("only one level of forward select_related is supported")


def _instance(statement: _Statement, klass_info: dict[str, Any], row: tuple[Any, ...]) -> Any:
    """One model instance of ``row`` (as Django's ``RelatedPopulator`` makes them)."""
    positions = klass_info["select_fields"]
    model = klass_info["model"]
    attnames = [statement.attnames[i] for i in positions]
    values = [row[i] for i in positions]
    if (
        klass_info.get("field") is not None
        and values[attnames.index(model._meta.pk.attname)] is None
    ):
        return None  # a nullable relation that is null: the left join found nothing
    instance = model.from_db(statement.using, attnames, values)
    for related in klass_info.get("related_klass_infos", ()):
        obj = _instance(statement, related, row)
        related["local_setter"](instance, obj)
        if obj is not None:
            related["remote_setter"](obj, instance)
    return instance
