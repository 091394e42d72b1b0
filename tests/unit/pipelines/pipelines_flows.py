"""Pipelines used by the pipeline tests, importable in fresh processes (PYTHONPATH = this folder).

Steps count their executions by appending to ``$PIPE_TEST_COUNTS/<step>`` and can be told to
block (``PIPE_TEST_BLOCK=step`` inside the function, ``=write`` halfway through writing
the output) after touching ``$PIPE_TEST_COUNTS/<step>.blocked``, so a test can SIGKILL them there.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noria.pipelines import Pipeline, register_serializer, scratch_dir, step


def tick(name: str) -> None:
    folder = os.environ.get("PIPE_TEST_COUNTS")
    if folder:
        with (Path(folder) / name).open("a") as fh:
            fh.write("x\n")


def counts(folder: Path) -> dict[str, int]:
    return {p.name: len(p.read_text().splitlines()) for p in folder.iterdir() if not p.name.endswith(".blocked")}


def block_if(where: str, name: str) -> None:
    if os.environ.get("PIPE_TEST_BLOCK") == where:
        (Path(os.environ["PIPE_TEST_COUNTS"]) / f"{name}.blocked").touch()
        time.sleep(120)


# --- "numbers": two branches, so a parameter change reruns only part of the graph ----------


@step
def source(rows: int) -> pd.DataFrame:
    tick("source")
    x = np.arange(rows, dtype="int64")
    return pd.DataFrame({"x": x, "g": x % 3})


@step
def scaled(source: pd.DataFrame, factor: float) -> pd.DataFrame:
    tick("scaled")
    out = source.copy()
    out["y"] = out["x"] * factor
    return out


@step
def totals(scaled: pd.DataFrame) -> dict[str, float]:
    tick("totals")
    return {str(k): float(v) for k, v in scaled.groupby("g")["y"].sum().items()}


@step
def size(source: pd.DataFrame) -> dict[str, int]:
    tick("size")
    return {"rows": len(source)}


@step
def report(totals: dict[str, float], size: dict[str, int], title: str = "report") -> str:
    tick("report")
    return f"{title}: {size['rows']} rows, totals {totals}"


def numbers_pipeline(**params: Any) -> Pipeline:
    return Pipeline("numbers", [source, scaled, totals, size, report], params={"rows": 100, "factor": 2.0} | params)


numbers = numbers_pipeline()


# --- "slow": the last step can block in its code or while its output is written ------------


@dataclass
class Blob:
    data: bytes


class BlobSerializer:
    """Writes half the bytes, may block there (to be killed), then the rest."""

    name = "test-blob"

    def dump(self, value: Any, folder: Path) -> None:
        half = len(value.data) // 2
        with (folder / "blob.bin").open("wb") as fh:
            fh.write(value.data[:half])
            fh.flush()
            block_if("write", "stuck")
            fh.write(value.data[half:])

    def load(self, folder: Path) -> Any:
        return Blob((folder / "blob.bin").read_bytes())


register_serializer(Blob, BlobSerializer())


@step
def first(rows: int) -> pd.DataFrame:
    tick("first")
    return pd.DataFrame({"v": np.arange(rows, dtype="float64")})


@step
def second(first: pd.DataFrame) -> dict[str, float]:
    tick("second")
    return {"sum": float(first["v"].sum())}


@step
def stuck(second: dict[str, float]) -> Blob:
    tick("stuck")
    block_if("step", "stuck")
    return Blob(b"%.1f" % second["sum"] * 1000)


@step
def model_file(second: dict[str, float]) -> Path:
    tick("model_file")
    path = scratch_dir() / "model.txt"
    path.write_text(f"sum={second['sum']}\n")
    return path


slow = Pipeline("slow", [first, second, stuck, model_file], params={"rows": 50})
