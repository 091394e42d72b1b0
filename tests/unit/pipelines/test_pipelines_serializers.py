from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from noria.pipelines import ArtifactTypeError, register_serializer
from noria.pipelines._serializers import dump_artifact, load_artifact, serializer_for


def roundtrip(value: Any, tmp_path: Path) -> tuple[str, Any]:
    folder = tmp_path / "artifact"
    folder.mkdir(parents=True)
    name = dump_artifact(value, folder)
    return name, load_artifact(folder)


def test_dataframe_dtypes_and_index_survive(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "i64": np.array([1, 2, 3], dtype="int64"),
            "i32": np.array([1, 2, 3], dtype="int32"),
            "f64": [0.5, np.nan, 2.0],
            "nullable": pd.array([1, None, 3], dtype="Int64"),
            "flag": [True, False, True],
            "cat": pd.Categorical(["a", "b", "a"], categories=["b", "a"], ordered=True),
            "ts": pd.to_datetime(["2013-01-01 05:00", "2013-07-01 00:00", "2013-12-31 23:00"]).tz_localize("UTC"),
            "naive": pd.to_datetime(["2013-01-01", "2013-01-02", "2013-01-03"]),
            "text": ["x", None, "z"],
            "string": pd.array(["x", None, "z"], dtype="string"),
        },
        index=pd.Index([10, 20, 30], name="row"),
    )
    name, back = roundtrip(df, tmp_path)
    assert name == "parquet"
    pd.testing.assert_frame_equal(back, df)
    assert back.dtypes.to_dict() == df.dtypes.to_dict()
    assert back["cat"].cat.ordered and list(back["cat"].cat.categories) == ["b", "a"]


def test_sliced_frame_keeps_its_range_index(tmp_path: Path) -> None:
    df = pd.DataFrame({"v": range(10)}).iloc[4:]
    pd.testing.assert_frame_equal(roundtrip(df, tmp_path)[1], df)


def test_json_values(tmp_path: Path) -> None:
    value = {"auc": 0.72, "n": 3, "ok": True, "none": None, "tags": ["a", "b"], "nested": {"k": [1, 2.5]}}
    assert roundtrip(value, tmp_path) == ("json", value)
    assert roundtrip("text", tmp_path / "s")[1] == "text"


@pytest.mark.parametrize(
    ("value", "message"),
    [({1: "a"}, "key 1 of type int"), ({"t": (1, 2)}, r"value\['t'\] is a tuple"), ([{1, 2}], "is a set")],
)
def test_json_refuses_what_would_not_read_back(value: Any, message: str, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(ArtifactTypeError, match=message):
        dump_artifact(value, tmp_path / "a")


def test_numpy_array(tmp_path: Path) -> None:
    arr = np.arange(12, dtype="float32").reshape(3, 4)
    name, back = roundtrip(arr, tmp_path)
    assert name == "npy" and back.dtype == np.float32 and np.array_equal(back, arr)
    (tmp_path / "o").mkdir()
    with pytest.raises(ArtifactTypeError, match="without pickle"):
        dump_artifact(np.array([object()]), tmp_path / "o")


def test_path_file_and_folder(tmp_path: Path) -> None:
    model = tmp_path / "model.txt"
    model.write_text("tree=1\n")
    name, back = roundtrip(model, tmp_path / "f")
    assert name == "path" and back.name == "model.txt" and back.read_text() == "tree=1\n"

    folder = tmp_path / "bundle"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.bin").write_bytes(b"\x00\x01")
    _, back = roundtrip(folder, tmp_path / "d")
    assert back.name == "bundle" and (back / "sub" / "w.bin").read_bytes() == b"\x00\x01"

    (tmp_path / "m").mkdir()
    with pytest.raises(ArtifactTypeError, match="does not exist"):
        dump_artifact(tmp_path / "nope.txt", tmp_path / "m")


def test_unknown_types_are_refused_without_pickle(tmp_path: Path) -> None:
    class Model:
        pass

    with pytest.raises(ArtifactTypeError, match="no serializer for a value of type") as err:
        serializer_for(Model())
    assert err.value.fix is not None and "register_serializer" in err.value.fix
    (tmp_path / "c").mkdir()
    with pytest.raises(ArtifactTypeError, match="column names must be strings"):
        dump_artifact(pd.DataFrame({0: [1]}), tmp_path / "c")
    (tmp_path / "x").mkdir()
    with pytest.raises(ArtifactTypeError, match="cannot be stored as Parquet"):
        dump_artifact(pd.DataFrame({"mixed": [1, "a"]}), tmp_path / "x")


def test_custom_serializer_wins_for_its_type(tmp_path: Path) -> None:
    class Celsius(float):
        pass

    class CelsiusSerializer:
        name = "test-celsius"

        def dump(self, value: Any, folder: Path) -> None:
            (folder / "c.txt").write_text(repr(float(value)))

        def load(self, folder: Path) -> Any:
            return Celsius(float((folder / "c.txt").read_text()))

    register_serializer(Celsius, CelsiusSerializer())
    name, back = roundtrip(Celsius(21.5), tmp_path)
    assert name == "test-celsius" and isinstance(back, Celsius) and back == 21.5
    assert serializer_for(1.5).name == "json"  # plain floats are untouched

    class Other:
        name = "test-celsius"

        def dump(self, value: Any, folder: Path) -> None: ...

        def load(self, folder: Path) -> Any: ...

    with pytest.raises(ArtifactTypeError, match="already registered"):
        register_serializer(bytes, Other())
