"""The training pipeline's file-based rows give what the frame-based functions give, row for row.

The pipeline's split step reads the training set with pyarrow (a file, or a folder of Parquet
files as Spark writes them) and writes the train rows to a file; tune, train and evaluate read
matrices and samples from it. These tests hold that path to the in-memory one
(``split_by_time``, ``train``, ``tune`` on frames): the same parts, the same sample rows, and
byte for byte the same model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from training_flights_frame import LABEL, TIME
from training_flights_frame import TEST_CATEGORICAL as CATS
from training_flights_frame import TEST_FEATURES as FEATURES

from noria.errors import DataError
from noria.tasks import BinaryTask
from noria.training import Split, TrainingSettings, split_by_time, train, tune
from noria.training.baselines import sample_split
from noria.training.model import Matrix, fit_model
from noria.training.rows import TrainRows, parquet_files, split_files
from noria.training.split import sample_positions
from noria.training.tuning import tune_rows

TRAIN, TEST = ("2013-01", "2013-06"), ("2013-07", "2013-12")
SMALL = {"learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20, "feature_fraction": 0.8,
         "bagging_fraction": 0.8}  # fmt: skip


@pytest.fixture(scope="module")
def sources(flights: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The training set as one Parquet file, and as a folder of parts with Spark's marker files."""
    root = tmp_path_factory.mktemp("training_sets")
    frame = flights.reset_index(drop=True)
    single = root / "training_set.parquet"
    frame.to_parquet(single, index=False)
    folder = root / "training_set"
    (folder / "x=2").mkdir(parents=True)  # a partition folder, as Spark writes them
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        where = folder / "x=2" if i == 2 else folder
        frame.iloc[part].to_parquet(where / f"part-{i:05d}.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00000.parquet.crc").write_bytes(b"not parquet")
    return {"file": single, "folder": folder}


@pytest.fixture(scope="module")
def expected(sources: dict[str, Path]) -> Split:
    """What the pipeline computed before: ``split_by_time`` of the training set read by pandas."""
    return split_by_time(pd.read_parquet(sources["file"]), TIME, LABEL, train=TRAIN, test=TEST)


def _split_files(source: Path, out: Path) -> TrainRows:
    parts = split_files(source, out, time_col=TIME, label=LABEL, columns=FEATURES, train=TRAIN, test=TEST)
    assert parts.folder == out
    return TrainRows.open(out, BinaryTask())


@pytest.fixture(scope="module")
def rows(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> TrainRows:
    return _split_files(sources["file"], tmp_path_factory.mktemp("rows"))


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_split_files_gives_the_parts_split_by_time_gives(
    kind: str, sources: dict[str, Path], expected: Split, tmp_path: Path
) -> None:
    parts = split_files(
        sources[kind], tmp_path, time_col=TIME, label=LABEL, columns=FEATURES, optional=["nope"], train=TRAIN,
        test=TEST,
    )  # fmt: skip
    assert parts.plan.summary() == expected.summary()
    assert parts.plan.summary()["dropped_unlabelled"]["train"] > 0  # the fixture has cancelled flights
    pd.testing.assert_frame_equal(parts.test, expected.test)
    rows = TrainRows.open(tmp_path, BinaryTask())
    assert (rows.rows, rows.fit_rows) == (len(expected.train), len(expected.fit))
    pd.testing.assert_frame_equal(rows.frame(FEATURES), expected.train[[TIME, LABEL, *FEATURES]].reset_index(drop=True))
    assert np.array_equal(rows.labels(), expected.train[LABEL].to_numpy(dtype=np.float64))


def test_a_folder_lists_its_parquet_files_in_name_order(sources: dict[str, Path]) -> None:
    names = [p.name for p in parquet_files(sources["folder"])]
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert parquet_files(sources["file"]) == [sources["file"]]


def test_missing_training_sets_and_columns_are_clear_errors(sources: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no Parquet training set"):
        split_files(tmp_path / "gone", tmp_path / "out", time_col=TIME, label=LABEL, columns=[], train=TRAIN, test=TEST)
    with pytest.raises(DataError, match=r"no column\(s\) 'wind_speed_kmh'"):
        split_files(
            sources["file"], tmp_path / "out", time_col=TIME, label=LABEL, columns=["wind_speed_kmh"], train=TRAIN,
            test=TEST,
        )  # fmt: skip
    with pytest.raises(DataError, match="no column 'outcome'"):
        split_files(
            sources["file"], tmp_path / "out", time_col=TIME, label="outcome", columns=[], train=TRAIN, test=TEST
        )
    with pytest.raises(DataError, match="cannot read the train rows"):
        TrainRows.open(tmp_path / "nothing", BinaryTask())


def test_the_matrix_holds_the_values_and_category_codes(rows: TrainRows, expected: Split) -> None:
    matrix = rows.matrix(FEATURES, CATS)
    frame = Matrix.from_frame(expected.train, LABEL, FEATURES, CATS)
    assert matrix.x.dtype == np.float64 and matrix.x.flags.c_contiguous
    assert matrix.categories == frame.categories
    assert np.array_equal(matrix.x, frame.x, equal_nan=True) and np.array_equal(matrix.y, frame.y)
    j = FEATURES.index("dest")
    first = expected.train["dest"].iloc[0]
    assert matrix.categories["dest"][int(matrix.x[0, j])] == first
    # a sample: the rows at those positions, codes still index every train row's categories
    some = np.array([3, 10, 11, 200])
    part = rows.matrix(FEATURES, CATS, some)
    assert np.array_equal(part.x, matrix.x[some], equal_nan=True) and part.categories == matrix.categories


def test_the_model_from_the_files_is_the_model_from_frames(rows: TrainRows, expected: Split) -> None:
    """Byte for byte: the pipeline's matrices change how rows are held, not what LightGBM learns."""
    from_frames = train(expected, FEATURES, CATS, SMALL, seed=7, max_rounds=200, early_stopping_rounds=20)
    # the validation slice holds a destination the fit part never saw: codes must still agree
    assert set(expected.valid["dest"]) - set(expected.fit["dest"])
    matrix = rows.matrix(FEATURES, CATS)
    from_files = fit_model(
        matrix.rows(slice(0, rows.fit_rows)),
        matrix.rows(slice(rows.fit_rows, None)),
        matrix,
        label=LABEL,
        task=BinaryTask(),
        params=SMALL,
        seed=7,
        max_rounds=200,
        early_stopping_rounds=20,
    )
    assert from_files.model_text() == from_frames.model_text()
    assert from_files.valid_curve == from_frames.valid_curve
    assert (from_files.features, from_files.categorical) == (FEATURES, CATS)
    assert np.array_equal(from_files.predict(expected.test), from_frames.predict(expected.test))


def test_tuning_from_the_files_samples_the_rows_tuning_from_frames_samples(rows: TrainRows, expected: Split) -> None:
    from_frames = tune(
        expected, FEATURES, CATS, trials=3, seed=5, max_rounds=60, early_stopping_rounds=10, sample_rows=1_000
    )
    from_files = tune_rows(
        rows, FEATURES, CATS, trials=3, seed=5, max_rounds=60, early_stopping_rounds=10, sample_rows=1_000
    )
    assert from_files.sampled and (from_files.fit_rows, from_files.valid_rows) == (1_000, 250)
    assert (from_frames.fit_rows, from_frames.valid_rows) == (1_000, 250)
    assert [t.value for t in from_files.trials] == [t.value for t in from_frames.trials]
    assert from_files.best_params == from_frames.best_params


def test_sample_positions_are_the_rows_pandas_samples() -> None:
    frame = pd.DataFrame({"v": np.arange(1_000)})
    picked = frame.sample(n=123, random_state=42).sort_index()["v"].to_numpy()
    assert np.array_equal(sample_positions(1_000, 123, 42), picked)
    assert np.array_equal(sample_positions(50, 123, 42), np.arange(50))
    assert np.array_equal(sample_positions(50, None, 42), np.arange(50))


def test_baselines_learn_on_a_sample_with_fit_rows_before_validation_rows(expected: Split) -> None:
    assert sample_split(expected, None) is expected and sample_split(expected, 10**6) is expected
    small = sample_split(expected, 1_000, seed=3)
    assert len(small.train) == 1_000 and len(small.fit) + len(small.valid) == 1_000
    assert small.fit[TIME].max() < expected.valid_window.start <= small.valid[TIME].min()
    assert TrainingSettings().baseline_sample_rows == 400_000
