"""Load, check and resolve feature definitions: the one place that knows what a name means.

:func:`load_definitions` reads the ``features:`` configuration (noria.yaml, ``features.yaml``
or a ``features/`` folder), imports the transformation functions it names, checks every
reference (tables, columns, entities, functions, services), orders derived features by their
dependencies (refusing cycles) and computes the definition hash recorded with training sets
and models. Every problem raises :class:`FeatureDefinitionError` naming the definition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from noria import project_code
from noria.config import ColumnType, Project, TableSpec
from noria.features.checks import FeatureDefinitionError as FeatureDefinitionError
from noria.features.checks import FeatureInfo as FeatureInfo
from noria.features.checks import check_definitions
from noria.features.config import DEPLOYMENT_FIELDS, ENGINE_FIELDS, FeaturesConfig
from noria.project_code import module_file

FEATURES_FILE = "features.yaml"
FEATURES_DIR = "features"


@dataclass(frozen=True)
class ServicePlan:
    """What computing a service takes: the views to fetch, in dependency order."""

    name: str
    features: list[str]  # output columns, in the declared order
    request_views: list[str]
    batch_views: list[str]
    derived: list[str]  # topologically ordered, dependencies included


@dataclass
class Definitions:
    """Checked, resolved feature definitions of one project."""

    project: Project
    config: FeaturesConfig
    functions: dict[str, Callable[..., Any]]
    features: dict[str, FeatureInfo]
    derived_order: list[str]
    definition_hash: str
    request_types: dict[str, tuple[ColumnType, bool]] = field(default_factory=dict)  # column -> (type, nullable)

    @property
    def request(self) -> Any:
        assert self.config.request is not None  # checked by load_definitions
        return self.config.request

    @property
    def repo_dir(self) -> Path:
        return self.project.path(self.config.repo_dir)

    def join_keys(self, view: str) -> list[str]:
        spec = self.config.feature_views[view]
        keys = [self.config.entities[e].key(e) for e in spec.entities]
        return [*keys, "noria_day"] if spec.bucket == "day" else keys

    def service(self, name: str | None = None) -> ServicePlan:
        services = self.config.services
        if name is None:
            if len(services) != 1:
                raise FeatureDefinitionError(
                    f"the project declares {len(services)} feature services ({', '.join(services) or 'none'})",
                    fix="name one with --service" if services else "declare one under features.services",
                )
            name = next(iter(services))
        if name not in services:
            raise FeatureDefinitionError(
                f"no feature service {name!r} (declared: {', '.join(services) or 'none'})",
                fix="use one of the declared services or add it under features.services",
            )
        outputs: list[str] = []
        for ref in services[name].features:
            if ref in self.config.derived:
                outputs.append(ref)
            else:
                outputs.extend(f.name for f in self.features.values() if f.view == ref)
        needed = _closure(outputs, self.config)
        views = {self.features[f].view for f in needed if f in self.features}
        return ServicePlan(
            name=name,
            features=outputs,
            request_views=[v for v in self.config.request_views if v in views],
            batch_views=[v for v in self.config.feature_views if v in views],
            derived=[d for d in self.derived_order if d in needed],
        )


def _closure(outputs: Iterable[str], config: FeaturesConfig) -> set[str]:
    needed: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        if name in config.derived:
            stack.extend(config.derived[name].inputs)
    return needed


def feature_catalog(defs: Definitions) -> list[dict[str, str]]:
    """One row per feature: view, kind, name, type, keys, TTL and description (``noria features list``)."""
    rows = []
    for info in defs.features.values():
        keys, ttl = "", ""
        if info.kind == "batch":
            spec = defs.config.feature_views[info.view]
            keys = ", ".join(defs.join_keys(info.view))
            ttl = str(spec.ttl) if spec.ttl else "forever"
        elif info.kind == "derived":
            keys = "from " + ", ".join(defs.config.derived[info.name].inputs)
        rows.append(
            {
                "view": info.view,
                "kind": info.kind,
                "feature": info.name,
                "type": info.type,
                "keys": keys,
                "ttl": ttl,
                "description": info.description,
            }
        )
    return rows


# --- loading the configuration ------------------------------------------------------------


def load_features_config(project: Project) -> FeaturesConfig:
    """The project's feature configuration, merged from noria.yaml, features.yaml and features/*.yaml."""
    parts: list[tuple[str, dict[str, Any]]] = []
    section = getattr(project.config, "features", None)
    engine: dict[str, Any] = {}
    deployment: dict[str, Any] = {}
    if isinstance(section, FeaturesConfig):
        data = section.model_dump(exclude_unset=True)
        # Engine settings in noria.yaml (its profiles, NORIA_* variables) win over feature files.
        engine = {k: data.pop(k) for k in ENGINE_FIELDS if k in data}
        deployment = {k: data.pop(k) for k in DEPLOYMENT_FIELDS if k in data}
        if section.declared:
            parts.append(("noria.yaml", data))
    files = [project.root / FEATURES_FILE] if (project.root / FEATURES_FILE).is_file() else []
    folder = project.root / FEATURES_DIR
    if folder.is_dir():
        files += sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    for file in files:
        parts.append((str(file.relative_to(project.root)), _read_part(file)))
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, str], str] = {}
    for where, data in parts:
        for key, value in data.items():
            if isinstance(value, dict) and key not in ("request", "online_store", *ENGINE_FIELDS):
                target = merged.setdefault(key, {})
                for name, item in value.items():
                    if (key, name) in origin and target.get(name) == item:
                        continue  # the same definition read twice (e.g. a file also merged into noria.yaml)
                    if (key, name) in origin:
                        raise FeatureDefinitionError(
                            f"{key} {name!r} is defined twice: in {origin[(key, name)]} and in {where}",
                            fix="keep one definition (names must be unique across feature files)",
                        )
                    origin[(key, name)] = where
                    target[name] = item
            else:
                if (key, "") in origin and merged.get(key) == value:
                    continue
                if (key, "") in origin:
                    raise FeatureDefinitionError(
                        f"features.{key} is set twice: in {origin[(key, '')]} and in {where}", fix="keep one"
                    )
                origin[(key, "")] = where
                merged[key] = value
    merged |= engine
    for key, value in deployment.items():  # key by key: type: redis keeps the file's other settings
        merged[key] = {**(merged.get(key) or {}), **value}
    try:
        return FeaturesConfig.model_validate(merged)
    except PydanticValidationError as exc:
        raise _pydantic_error(exc, [w for w, _ in parts]) from None


def _read_part(file: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FeatureDefinitionError(f"cannot read {file}: {exc}", fix="fix the YAML syntax") from None
    if isinstance(data, dict) and set(data) == {"features"}:
        data = data["features"] or {}
    if not isinstance(data, dict):
        raise FeatureDefinitionError(f"{file} must hold a mapping (entities:, sources:, feature_views: ...)")
    return data


def _pydantic_error(exc: PydanticValidationError, where: list[str]) -> FeatureDefinitionError:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against docs/features.md)"
        problems.append(f"features.{loc}: {msg}")
    return FeatureDefinitionError(
        "; ".join(problems) + f" (in {', '.join(where) or 'noria.yaml'})", fix="edit the feature definition named"
    )


# --- functions --------------------------------------------------------------------------


def resolve_function(root: Path, ref: str, owner: str) -> Callable[..., Any]:
    """Import ``module:function`` from the project folder; ``owner`` names the definition for errors."""
    return project_code.resolve_function(root, ref, owner, error=FeatureDefinitionError)


def definition_hash(config: FeaturesConfig, root: Path) -> str:
    """sha256 of the canonical configuration plus the source of every module it references."""
    digest = hashlib.sha256()
    # The engine settings say how values are computed, not what they are: every engine gives the same.
    definition = config.model_dump(mode="json", exclude={*ENGINE_FIELDS, *DEPLOYMENT_FIELDS})
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    digest.update(canonical.encode())
    modules = sorted({ref.partition(":")[0] for ref in function_refs(config).values()})
    for name in modules:
        path = module_file(root, name)
        digest.update(f"\n--module {name}\n".encode())
        digest.update(path.read_bytes() if path else b"<missing>")
    return digest.hexdigest()


def function_refs(config: FeaturesConfig) -> dict[str, str]:
    """definition label -> ``module:function`` for every function the config names."""
    refs: dict[str, str] = {}
    if config.request is not None:
        refs["request.timestamp"] = config.request.timestamp
    refs |= {f"source {n!r}": s.function for n, s in config.sources.items()}
    refs |= {f"request view {n!r}": v.function for n, v in config.request_views.items() if v.function}
    refs |= {f"derived feature {n!r}": d.function for n, d in config.derived.items()}
    return refs


# --- checking ------------------------------------------------------------------------------


def load_definitions(project: Project, config: FeaturesConfig | None = None) -> Definitions:
    """Load (unless given), check and resolve the project's feature definitions."""
    config = config if config is not None else load_features_config(project)
    if config.request is None:
        raise FeatureDefinitionError(
            f"project {project.config.project!r} declares no features (features.request is missing)",
            fix="add a features: section to noria.yaml or a features.yaml next to it (see docs/features.md)",
        )
    tables: dict[str, TableSpec] = project.config.data.tables
    features = check_definitions(config, tables, project.config.model.target)
    derived_order = _derived_order(config)
    functions = {ref: resolve_function(project.root, ref, owner) for owner, ref in function_refs(config).items()}
    request_table = tables[config.request.table]
    request_types = {
        c: (request_table.columns[c].type, request_table.columns[c].nullable) for c in config.request.columns
    }
    return Definitions(
        project=project,
        config=config,
        functions=functions,
        features=features,
        derived_order=derived_order,
        definition_hash=definition_hash(config, project.root),
        request_types=request_types,
    )


def _derived_order(config: FeaturesConfig) -> list[str]:
    """Derived features so that each comes after the derived features it uses; a cycle is an error."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise FeatureDefinitionError(
                f"derived feature {name!r} depends on itself: {' -> '.join(cycle)}",
                fix="break the cycle: one of these features must be computed without the others",
            )
        state[name] = 1
        for dep in config.derived[name].inputs:
            if dep in config.derived:
                visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in config.derived:
        visit(name, [])
    return order


__all__ = [
    "Definitions",
    "FeatureDefinitionError",
    "FeatureInfo",
    "ServicePlan",
    "definition_hash",
    "feature_catalog",
    "load_definitions",
    "load_features_config",
    "resolve_function",
]
