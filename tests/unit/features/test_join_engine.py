"""The join-engine registry: every value of features.offline_engine has an engine, anything else a clear error.

The engines' values are checked against each other in tests/integration/test_join_engine_contract.py.
"""

from __future__ import annotations

import sys
from typing import get_args

import pandas as pd
import pytest

from noria.errors import ConfigError, MissingExtraError
from noria.features.config import OfflineEngine
from noria.features.duckdb_join import DuckDBJoin
from noria.features.join_engine import ENGINES, join_engine
from noria.features.offline import historical_features
from noria.features.spark import SparkJoin


def test_every_configurable_engine_is_registered_and_nothing_else() -> None:
    assert list(ENGINES) == list(get_args(OfflineEngine))
    duck = join_engine("duckdb")
    assert isinstance(duck, DuckDBJoin) and (duck.name, duck.method) == ("duckdb", "duckdb-asof")
    # The lineage record's words for each engine stay what training sets already record.
    assert {name: make().method for name, make in ENGINES.items()} == {
        "duckdb": "duckdb-asof",
        "spark": "spark-window-asof",
    }
    assert all(make().name == name for name, make in ENGINES.items())


def test_an_unknown_engine_names_the_key_the_choices_and_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        join_engine("polars")
    message, fix = info.value.message, str(info.value.fix)
    assert "'polars'" in message and "features.offline_engine" in message and "duckdb, spark" in message
    assert "engine='duckdb'" in fix and "engine='spark'" in fix and "NORIA_FEATURES__OFFLINE_ENGINE" in fix


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if not installed, even where it is
    with pytest.raises(MissingExtraError) as info:
        join_engine("spark")
    assert "pyspark" in info.value.message and "features.offline_engine: spark" in info.value.message
    assert "pip install 'pyspark>=4.0'" in str(info.value.fix) and "features.offline_engine: duckdb" in str(
        info.value.fix
    )
    assert isinstance(SparkJoin(), SparkJoin)  # choosing is what checks, not importing


def test_historical_features_refuses_an_unknown_engine_instead_of_using_duckdb() -> None:
    with pytest.raises(ConfigError, match="features.offline_engine"):
        historical_features(None, None, pd.DataFrame(), {}, engine="polars")  # type: ignore[arg-type]
