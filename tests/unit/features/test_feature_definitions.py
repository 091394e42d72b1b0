"""Feature definitions: loading, checking, apply errors that name the definition, the hash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from noria.config import Project, load_project
from noria.features.definitions import FeatureDefinitionError, feature_catalog, load_definitions
from noria.features.repo import apply, open_store
from noria.features.sources import SnapshotLike as FrameSnapshot

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "flights"


def edit(project: Project, change: Callable[[dict[str, Any]], None]) -> Project:
    path = project.root / "features.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_project(project.root, environ={})


def test_reference_definitions_load(flights_project: Project) -> None:
    defs = load_definitions(flights_project)
    plan = defs.service()
    assert plan.name == "flight_delay"
    assert plan.batch_views == [
        "origin_weather",
        "plane",
        "carrier_delay_rates",
        "origin_delay_rates",
        "route_delay_rates",
    ]
    assert plan.derived == ["plane_age", "dewpoint_spread"]
    assert {"sched_hour", "day_of_week", "route", "temp", "plane_seats", "route_late_rate_28d"} <= set(plan.features)
    assert len(defs.definition_hash) == 64
    rows = feature_catalog(defs)
    assert all(r["description"] for r in rows), [r["feature"] for r in rows if not r["description"]]


def test_hash_follows_config_and_code(flights_project: Project) -> None:
    before = load_definitions(flights_project).definition_hash
    code = flights_project.root / "flights_features.py"
    code.write_text(code.read_text() + "\n# a comment changes the code\n")
    after_code = load_definitions(flights_project).definition_hash
    project = edit(flights_project, lambda d: d["feature_views"]["origin_weather"].update(ttl="2h"))
    after_config = load_definitions(project).definition_hash
    assert len({before, after_code, after_config}) == 3


def test_service_pulls_in_dependencies(flights_project: Project) -> None:
    # plane_age needs plane_year (view `plane`) and year (request): listed alone, it still gets them.
    project = edit(flights_project, lambda d: d["services"].update(small={"features": ["plane_age"]}))
    plan = load_definitions(project).service("small")
    assert plan.features == ["plane_age"]
    assert plan.batch_views == ["plane"]
    assert plan.derived == ["plane_age"]


BAD: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    (
        "missing column",
        lambda d: d["sources"]["weather_observations"]["tables"]["weather"].append("cloud_cover"),
        ["source 'weather_observations'", "'cloud_cover'", "table 'weather'"],
    ),
    (
        "missing function",
        lambda d: d["sources"]["plane_registry"].update(function="flights_features:plane_registy"),
        ["source 'plane_registry'", "plane_registy", "not found"],
    ),
    (
        "missing module",
        lambda d: d["derived"]["plane_age"].update(function="no_such_module:plane_age"),
        ["derived feature 'plane_age'", "no_such_module"],
    ),
    (
        "cyclic dependency",
        lambda d: d["derived"].update(
            a={"function": "flights_features:plane_age", "inputs": ["b"]},
            b={"function": "flights_features:plane_age", "inputs": ["c"]},
            c={"function": "flights_features:plane_age", "inputs": ["a"]},
        ),
        ["depends on itself", "a -> b -> c -> a"],
    ),
    (
        "duplicate feature",
        lambda d: d["feature_views"]["plane"]["features"].update(temp={"type": "float"}),
        ["duplicate feature name 'temp'", "feature view 'plane'", "origin_weather"],
    ),
    (
        "feature named like a request column",
        lambda d: d["request_views"]["flight_context"]["features"].update(tailnum={"type": "str"}),
        ["duplicate name 'tailnum'", "request view 'flight_context'"],
    ),
    (
        "unknown input of a derived feature",
        lambda d: d["derived"]["dewpoint_spread"].update(inputs=["temp", "dew_point"]),
        ["derived feature 'dewpoint_spread'", "'dew_point'"],
    ),
    (
        "request view input not in the request",
        lambda d: d["request_views"]["flight_context"]["inputs"].append("dep_time"),
        ["request view 'flight_context'", "'dep_time'"],
    ),
    (
        "unknown view in a service",
        lambda d: d["services"]["flight_delay"]["features"].append("airport_weather"),
        ["service 'flight_delay'", "'airport_weather'"],
    ),
    (
        "unknown entity",
        lambda d: d["feature_views"]["plane"].update(entities=["plane"]),
        ["feature view 'plane'", "entity 'plane'"],
    ),
    (
        "join key not available at request time",
        lambda d: d["entities"]["tailnum"].update(join_key="tail_number"),
        ["feature view 'plane'", "'tail_number'"],
    ),
    (
        "misspelt key",
        lambda d: d["feature_views"]["plane"].update(tll="3h"),
        ["features.feature_views.plane.tll", "unknown key"],
    ),
    (
        "day bucket without ttl",
        lambda d: d["feature_views"]["origin_weather"].pop("ttl"),
        ["features.feature_views.origin_weather", "bucket: day needs a ttl"],
    ),
    (
        "bad ttl",
        lambda d: d["feature_views"]["origin_weather"].update(ttl="3 hours"),
        ["features.feature_views.origin_weather.ttl", "not a duration"],
    ),
]


@pytest.mark.parametrize(("change", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_apply_refuses_bad_definitions(
    flights_project: Project, snapshot: FrameSnapshot, change: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    project = edit(flights_project, change)
    with pytest.raises(FeatureDefinitionError) as err:
        apply(project, snapshot=snapshot)
    for text in expected:
        assert text in str(err.value)
    assert err.value.fix
    assert not (project.root / ".noria" / "feast" / "registry.db").exists()


def test_source_output_lacking_a_declared_feature(flights_project: Project, snapshot: FrameSnapshot) -> None:
    project = edit(flights_project, lambda d: d["feature_views"]["origin_weather"]["features"].update(cloud_cover={}))
    with pytest.raises(
        FeatureDefinitionError, match=r"feature view 'origin_weather'.*did not return column 'cloud_cover'"
    ):
        apply(project, snapshot=snapshot)


def test_duplicate_name_across_feature_files(flights_project: Project) -> None:
    extra = flights_project.root / "features"
    extra.mkdir()
    (extra / "more.yaml").write_text("entities:\n  origin: {description: again}\n")
    with pytest.raises(
        FeatureDefinitionError, match=r"entities 'origin' is defined twice: in features.yaml and in features/more.yaml"
    ):
        load_definitions(flights_project)


def test_features_folder_adds_definitions(flights_project: Project) -> None:
    extra = flights_project.root / "features"
    extra.mkdir()
    (extra / "wind.yaml").write_text(
        "derived:\n  gust_excess:\n    function: flights_features:dewpoint_spread\n    inputs: [temp, dewp]\n"
        "    description: a second derived feature from another file\n"
    )
    assert "gust_excess" in load_definitions(flights_project).features


def test_no_features_declared(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    (root / "noria.yaml").write_text((EXAMPLE / "noria.yaml").read_text())
    with pytest.raises(FeatureDefinitionError, match="declares no features"):
        load_definitions(load_project(root, environ={}))


def test_apply_registers_and_prunes(flights_project: Project, snapshot: FrameSnapshot) -> None:
    result = apply(flights_project, snapshot=snapshot)
    repo = flights_project.root / ".noria" / "feast"
    assert (repo / "feature_store.yaml").read_text().startswith("# Generated by `noria features apply`")
    store = open_store(load_definitions(flights_project))
    assert {v.name for v in store.list_feature_views()} == set(result.feature_views)
    assert [s.name for s in store.list_feature_services()] == ["flight_delay"]
    assert result.sources is not None and result.sources.rows["origin_weather"] > 700

    def drop_route(d: dict[str, Any]) -> None:
        del d["feature_views"]["route_delay_rates"]
        d["services"]["flight_delay"]["features"].remove("route_delay_rates")

    again = apply(edit(flights_project, drop_route), snapshot=snapshot)
    assert "FeatureView route_delay_rates" in again.deleted
    store = open_store(load_definitions(load_project(flights_project.root, environ={})))
    assert "route_delay_rates" not in {v.name for v in store.list_feature_views()}


def test_section_in_noria_yaml_merges_with_files(flights_project: Project) -> None:
    # When NoriaConfig carries a `features:` section, it is merged with features.yaml; the same
    # definition read from both is fine, a different one is an error naming both places.
    import dataclasses

    from noria.features.config import FeaturesConfig
    from noria.features.definitions import load_features_config

    body = yaml.safe_load((flights_project.root / "features.yaml").read_text())
    section = FeaturesConfig.model_validate(body)
    project = dataclasses.replace(
        flights_project, config=flights_project.config.model_copy(update={"features": section})
    )
    assert load_features_config(project) == section
    changed = FeaturesConfig.model_validate(body | {"entities": {"origin": {"description": "other"}}})
    project = dataclasses.replace(
        flights_project, config=flights_project.config.model_copy(update={"features": changed})
    )
    with pytest.raises(
        FeatureDefinitionError, match="entities 'origin' is defined twice: in noria.yaml and in features.yaml"
    ):
        load_features_config(project)


def test_features_section_inside_noria_yaml(flights_project: Project) -> None:
    before = load_definitions(flights_project).definition_hash
    body = (flights_project.root / "features.yaml").read_text()
    noria_yaml = flights_project.root / "noria.yaml"
    indented = "".join(f"  {line}" if line.strip() else line for line in body.splitlines(keepends=True))
    noria_yaml.write_text(noria_yaml.read_text() + "\nfeatures:\n" + indented)
    (flights_project.root / "features.yaml").unlink()
    defs = load_definitions(load_project(flights_project.root, environ={}))
    assert defs.definition_hash == before
    assert "route_late_rate_28d" in defs.features


def test_a_profile_or_environment_moves_the_online_store_without_changing_the_definitions(
    flights_project: Project,
) -> None:
    """features.yaml keeps the SQLite store; NORIA_FEATURES__ONLINE_STORE__* (e.g. the cluster's Redis) wins."""
    import yaml

    from noria.config import load_project
    from noria.features.definitions import load_definitions

    local = load_definitions(flights_project)
    assert local.config.online_store.type == "sqlite"
    path = flights_project.root / "noria.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["features"] = {}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    environ = {
        "NORIA_FEATURES__ONLINE_STORE__TYPE": "redis",
        "NORIA_FEATURES__ONLINE_STORE__CONNECTION_STRING": "redis:6379",
    }
    cluster = load_definitions(load_project(flights_project.root, environ=environ))
    assert cluster.config.online_store.type == "redis"
    assert cluster.config.online_store.connection_string == "redis:6379"
    assert cluster.config.feature_views == local.config.feature_views
    assert cluster.definition_hash == local.definition_hash  # where values are kept is not what they are


def test_the_store_follows_an_online_store_moved_after_apply(built_project: tuple[Project, Any]) -> None:
    """Applied with SQLite, then told (by the environment) to use Redis: Feast is opened on Redis, not on
    the SQLite store the earlier apply's feature_store.yaml still names."""
    from noria.features.repo import STORE_FILE

    project, _ = built_project
    defs = load_definitions(project)
    assert open_store(defs).config.online_store.type == "sqlite"
    environ = {
        "NORIA_FEATURES__ONLINE_STORE__TYPE": "redis",
        "NORIA_FEATURES__ONLINE_STORE__CONNECTION_STRING": "127.0.0.1:6399",
    }
    moved = load_definitions(load_project(project.root, environ=environ))
    assert "sqlite" in (moved.repo_dir / STORE_FILE).read_text(encoding="utf-8")  # written by the apply
    store = open_store(moved)
    assert store.config.online_store.type == "redis"
    assert store.config.online_store.connection_string == "127.0.0.1:6399"
    assert store.config.repo_path == moved.repo_dir
    assert {v.name for v in store.list_feature_views()} == set(defs.config.feature_views)  # the same registry
