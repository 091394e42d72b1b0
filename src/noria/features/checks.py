"""Static checks of feature definitions, run before any code or data: every reference resolves.

Each error names the definition (``feature view 'origin_weather'``), the bad reference and
what exists instead, so ``noria features apply`` tells a reviewer exactly what to fix. The
error (:class:`FeatureDefinitionError`) and what a checked feature is (:class:`FeatureInfo`)
live here, below :mod:`noria.features.definitions`, which loads, checks and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from noria.config import TableSpec
from noria.errors import ConfigError
from noria.features.config import RESERVED, FeaturesConfig, FeatureType

Kind = Literal["request", "passthrough", "batch", "derived"]


class FeatureDefinitionError(ConfigError):
    """A feature definition is wrong: a missing column, function or name, a cycle, a duplicate."""


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    type: FeatureType
    description: str
    view: str  # the view it belongs to (a derived feature is its own view)
    kind: Kind


_TYPE_OF_COLUMN = {"int": "int", "float": "float", "str": "str", "bool": "bool", "timestamp": "timestamp"}


def check_definitions(config: FeaturesConfig, tables: dict[str, TableSpec], target: Any) -> dict[str, FeatureInfo]:
    """Check every reference; return the features by name (request, batch, then derived)."""
    request = config.request
    assert request is not None
    if request.table not in tables:
        raise FeatureDefinitionError(
            f"features.request.table {request.table!r} is not a table in data.tables ({', '.join(tables)})",
            fix="name one of the declared tables",
        )
    table = tables[request.table]
    _columns_exist("features.request.columns", request.table, request.columns, table)
    _columns_exist("features.request.ids", request.table, request.ids or [], table)
    _check_target(target, request.table, tables)
    columns = set(request.columns)
    features: dict[str, FeatureInfo] = {}
    views_seen: dict[str, str] = {}

    def add(info: FeatureInfo, owner: str) -> None:
        if info.name in features:
            other = features[info.name]
            raise FeatureDefinitionError(
                f"duplicate feature name {info.name!r}: in {owner} and in {other.kind} view {other.view!r}",
                fix="rename one of them (feature names are columns of the training set, so they must be unique)",
            )
        if info.name in columns and info.kind != "passthrough":
            raise FeatureDefinitionError(
                f"duplicate name {info.name!r}: {owner} computes a feature named like the request column",
                fix=f"rename the feature, or list {info.name!r} under the request view's passthrough",
            )
        features[info.name] = info

    def add_view(name: str, kind: str) -> None:
        if name in views_seen:
            raise FeatureDefinitionError(
                f"duplicate name {name!r}: used by a {views_seen[name]} and a {kind}",
                fix="rename one (views and derived features share one namespace, used by services)",
            )
        views_seen[name] = kind

    for name, rv in config.request_views.items():
        owner = f"request view {name!r}"
        add_view(name, "request view")
        _in_request(owner, "inputs", rv.inputs, request.columns)
        _in_request(owner, "passthrough", rv.passthrough, request.columns)
        for col in rv.passthrough:
            spec = table.columns[col]
            if spec.type == "timestamp":
                raise FeatureDefinitionError(
                    f"{owner}: passthrough column {col!r} is a timestamp", fix="derive a number from it"
                )
            add(FeatureInfo(col, spec.type, spec.description, name, "passthrough"), owner)
        for feature, fs in rv.features.items():
            add(FeatureInfo(feature, fs.type, fs.description, name, "request"), owner)

    for name, view in config.feature_views.items():
        owner = f"feature view {name!r}"
        add_view(name, "feature view")
        if view.source not in config.sources:
            raise FeatureDefinitionError(
                f"{owner}: source {view.source!r} is not declared (sources: {', '.join(config.sources) or 'none'})",
                fix="declare it under features.sources or fix the name",
            )
        for entity in view.entities:
            if entity not in config.entities:
                raise FeatureDefinitionError(
                    f"{owner}: entity {entity!r} is not declared (entities: {', '.join(config.entities) or 'none'})",
                    fix="declare it under features.entities or fix the name",
                )
            key = config.entities[entity].key(entity)
            if key not in columns and (key not in features or features[key].kind not in ("request", "passthrough")):
                raise FeatureDefinitionError(
                    f"{owner}: join key {key!r} of entity {entity!r} is neither a request column"
                    f" ({', '.join(request.columns)}) nor a request-view feature",
                    fix="add the column to features.request.columns or compute it in a request view",
                )
        for feature, fs in view.features.items():
            add(FeatureInfo(feature, fs.type, fs.description, name, "batch"), owner)

    for name, source in config.sources.items():
        owner = f"source {name!r}"
        for tname, cols in source.tables.items():
            if tname not in tables:
                raise FeatureDefinitionError(
                    f"{owner}: table {tname!r} is not in data.tables ({', '.join(tables)})", fix="fix the table name"
                )
            _columns_exist(f"{owner} (tables.{tname})", tname, cols, tables[tname])

    for name, derived in config.derived.items():
        owner = f"derived feature {name!r}"
        add_view(name, "derived feature")
        for dep in derived.inputs:
            if dep not in columns and dep not in features and dep not in config.derived:
                raise FeatureDefinitionError(
                    f"{owner}: input {dep!r} is not a request column, a feature or a derived feature",
                    fix="fix the name, or declare the feature it refers to",
                )
        add(FeatureInfo(name, derived.type, derived.description, name, "derived"), owner)

    for name, service in config.services.items():
        for ref in service.features:
            if ref not in views_seen:
                raise FeatureDefinitionError(
                    f"service {name!r}: {ref!r} is not a feature view, request view or derived feature"
                    f" (declared: {', '.join(views_seen)})",
                    fix="list views and derived features by name",
                )
    for name in features:
        if name in RESERVED:
            raise FeatureDefinitionError(f"feature name {name!r} is reserved by Noria", fix="rename the feature")
    return features


def _check_target(target: Any, request_table: str, tables: dict[str, TableSpec]) -> None:
    """A target column lies in the request table; a label function's tables and columns exist."""
    if target is None:
        return  # a project may declare features before it declares what to predict
    if target.column is not None:
        table = target.table or request_table
        if table != request_table or target.column not in tables[request_table].columns:
            raise FeatureDefinitionError(
                f"the label column {table}.{target.column} (model.target) is not a column of the request"
                f" table {request_table!r}",
                fix="name a column of features.request.table, or compute the label with a label function "
                "(model.target.function)",
            )
        return
    for tname, cols in target.tables.items():
        if tname not in tables:
            raise FeatureDefinitionError(
                f"model.target.tables: table {tname!r} is not in data.tables ({', '.join(tables)})",
                fix="fix the table name",
            )
        _columns_exist(f"model.target (tables.{tname})", tname, cols, tables[tname])


def _columns_exist(owner: str, table_name: str, wanted: list[str], table: TableSpec) -> None:
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise FeatureDefinitionError(
            f"{owner}: column {missing[0]!r} is not a column of table {table_name!r}"
            f" (columns: {', '.join(table.columns)})",
            fix=f"use a declared column, or declare it under data.tables.{table_name}.columns",
        )


def _in_request(owner: str, what: str, wanted: list[str], request_columns: list[str]) -> None:
    missing = [c for c in wanted if c not in request_columns]
    if missing:
        raise FeatureDefinitionError(
            f"{owner}: {what} column {missing[0]!r} is not a request column ({', '.join(request_columns)})",
            fix="add it to features.request.columns or fix the name",
        )
