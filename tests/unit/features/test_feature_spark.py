"""Choosing the Spark offline engine: config, precedence, hash, and the error when pyspark is absent.

The Spark join itself runs in tests/integration/test_features_spark.py (pyspark in its own venv),
where it must give the DuckDB engine's training set value for value.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from noria.config import Project, load_project
from noria.errors import ConfigError, MissingExtraError
from noria.features.config import SparkSpec
from noria.features.definitions import load_definitions
from noria.features.spark import session_settings
from noria.features.training_set import build_training_set


def with_noria_features(project: Project, section: dict[str, Any], environ: dict[str, str] | None = None) -> Project:
    """The project with ``section`` as the ``features:`` of its noria.yaml (definitions stay in features.yaml)."""
    path = project.root / "noria.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["features"] = section
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return load_project(project.root, environ=environ or {})


def test_duckdb_is_the_default_and_the_engine_leaves_the_definition_hash_alone(flights_project: Project) -> None:
    default = load_definitions(flights_project)
    assert default.config.offline_engine == "duckdb" and default.config.spark == SparkSpec()
    spark = load_definitions(
        with_noria_features(flights_project, {"offline_engine": "spark", "spark": {"master": "spark://head:7077"}})
    )
    # Settings in noria.yaml apply although the definitions live in features.yaml ...
    assert spark.config.offline_engine == "spark" and spark.config.spark.master == "spark://head:7077"
    assert spark.config.feature_views == default.config.feature_views
    # ... and say how values are computed, not what they are: training sets keep their lineage hash.
    assert spark.definition_hash == default.definition_hash


def test_noria_yaml_profiles_and_environment_choose_the_engine(flights_project: Project) -> None:
    # features.yaml may name an engine too; noria.yaml (with its profile and NORIA_* variables) wins.
    features = flights_project.root / "features.yaml"
    features.write_text(features.read_text(encoding="utf-8") + "\noffline_engine: duckdb\n", encoding="utf-8")
    assert load_definitions(load_project(flights_project.root, environ={})).config.offline_engine == "duckdb"
    project = with_noria_features(flights_project, {}, environ={"NORIA_FEATURES__OFFLINE_ENGINE": "spark"})
    assert load_definitions(project).config.offline_engine == "spark"


def test_bad_engine_settings_name_the_field(flights_project: Project) -> None:
    with pytest.raises(ConfigError, match="offline_engine"):
        with_noria_features(flights_project, {"offline_engine": "polars"})
    with pytest.raises(ConfigError, match="driver_memory") as memory:
        with_noria_features(flights_project, {"spark": {"driver_memory": "lots"}})
    assert "512m" in str(memory.value)
    with pytest.raises(ConfigError, match="polars") as info:
        build_training_set(flights_project, "2013-01", "2013-01", engine="polars")
    assert "engine='spark'" in str(info.value.fix)


def test_session_settings_are_small_by_default_and_conf_wins() -> None:
    settings = session_settings(SparkSpec())
    assert settings["spark.driver.memory"] == "1g" and settings["spark.sql.shuffle.partitions"] == "4"
    assert settings["spark.sql.session.timeZone"] == "UTC" and settings["spark.ui.enabled"] == "false"
    tuned = session_settings(SparkSpec(driver_memory="4G", conf={"spark.sql.shuffle.partitions": "64"}))
    assert tuned["spark.driver.memory"] == "4g" and tuned["spark.sql.shuffle.partitions"] == "64"


def test_without_pyspark_the_spark_engine_says_how_to_install_it(
    flights_project: Project, snapshot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if not installed, even where it is
    project = with_noria_features(flights_project, {"offline_engine": "spark"})
    with pytest.raises(MissingExtraError) as info:
        build_training_set(project, "2013-01", "2013-01", snapshot=snapshot, out=tmp_path / "t.parquet")
    assert "pyspark" in info.value.message and "pip install" in str(info.value.fix)
    assert not (tmp_path / "t.parquet").exists()
    assert not (project.root / ".noria" / "feast" / "data").exists()  # stopped before computing the sources
