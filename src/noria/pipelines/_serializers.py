"""Serializers: how a step's return value becomes files in an artifact folder, and back.

No pickle. The registry is keyed by type and looked up along the value's MRO, so the most
specific registration wins. Built in:

========================  ==========  ==========================================
type                      serializer  files
========================  ==========  ==========================================
``pandas.DataFrame``      parquet     ``data.parquet`` (dtypes and index kept)
``numpy.ndarray``         npy         ``data.npy`` (``allow_pickle=False``)
dict/list/str/num/bool    json        ``data.json`` (string keys only)
``pathlib.Path``          path        ``payload/<name>``: the file or folder, copied
========================  ==========  ==========================================

Every artifact folder also holds ``meta.json`` naming its serializer, so loading needs no
type annotation. A loaded ``Path`` points into the store: read it, do not modify it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Protocol

from noria.pipelines._errors import ArtifactTypeError

META = "meta.json"


class Serializer(Protocol):
    """Writes one value into an empty folder and reads it back."""

    name: str

    def dump(self, value: Any, folder: Path) -> None: ...

    def load(self, folder: Path) -> Any: ...


class ParquetSerializer:
    name = "parquet"

    def dump(self, value: Any, folder: Path) -> None:
        bad = [c for c in value.columns if not isinstance(c, str)]
        if bad:
            raise ArtifactTypeError(
                f"DataFrame column names must be strings to be stored as Parquet, got {bad[:5]!r}",
                fix="rename the columns, e.g. df.columns = df.columns.map(str)",
            )
        try:
            value.to_parquet(folder / "data.parquet", engine="pyarrow")
        except (ValueError, TypeError, NotImplementedError) as exc:  # pyarrow's Arrow*Error subclass these
            raise ArtifactTypeError(
                f"DataFrame cannot be stored as Parquet: {exc}",
                fix="give mixed-type (object) columns one type, e.g. df[col] = df[col].astype(str)",
            ) from None

    def load(self, folder: Path) -> Any:
        import pandas as pd

        return pd.read_parquet(folder / "data.parquet", engine="pyarrow")


class NumpySerializer:
    name = "npy"

    def dump(self, value: Any, folder: Path) -> None:
        import numpy as np

        if value.dtype.hasobject:
            raise ArtifactTypeError(
                f"numpy array of dtype {value.dtype} cannot be stored without pickle",
                fix="convert it to a numeric or fixed-width string dtype, or return a DataFrame",
            )
        np.save(folder / "data.npy", value, allow_pickle=False)

    def load(self, folder: Path) -> Any:
        import numpy as np

        return np.load(folder / "data.npy", allow_pickle=False)


class JsonSerializer:
    name = "json"

    def dump(self, value: Any, folder: Path) -> None:
        _check_json(value, "value")
        (folder / "data.json").write_text(json.dumps(value, sort_keys=True), encoding="utf-8")

    def load(self, folder: Path) -> Any:
        return json.loads((folder / "data.json").read_text(encoding="utf-8"))


class PathSerializer:
    name = "path"

    def dump(self, value: Any, folder: Path) -> None:
        source = Path(value)
        if not source.exists():
            raise ArtifactTypeError(
                f"the step returned the path {source}, which does not exist",
                fix="write the file (e.g. under scratch_dir()) before returning its path",
            )
        target = folder / "payload" / (source.name or "root")
        target.parent.mkdir()
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)

    def load(self, folder: Path) -> Any:
        (entry,) = (folder / "payload").iterdir()
        return entry


def _check_json(value: Any, where: str) -> None:
    """Refuse what JSON would silently change (tuples, non-string keys) or cannot hold."""
    if value is None or isinstance(value, str | bool | int | float):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArtifactTypeError(
                    f"{where} has the key {key!r} of type {type(key).__name__}; JSON keys are strings",
                    fix="use string keys so the value reads back the same",
                )
            _check_json(item, f"{where}[{key!r}]")
        return
    raise ArtifactTypeError(
        f"{where} is a {type(value).__name__}, which JSON artifacts cannot hold",
        fix="use dict (string keys), list, str, int, float, bool or None inside JSON artifacts",
    )


_BY_TYPE: dict[type, Serializer] = {}
_BY_NAME: dict[str, Serializer] = {}
_BUILTINS: list[bool] = []  # non-empty once the built-ins are registered


def register_serializer(cls: type, serializer: Serializer) -> None:
    """Store values of ``cls`` (and its subclasses, unless more specific ones exist) with ``serializer``."""
    _register_builtins()
    _register(cls, serializer)


def _register(cls: type, serializer: Serializer) -> None:
    other = _BY_NAME.get(serializer.name)
    if other is not None and type(other) is not type(serializer):
        raise ArtifactTypeError(
            f"a different serializer is already registered under the name {serializer.name!r}",
            fix="give the serializer a unique `name`",
        )
    _BY_TYPE[cls] = serializer
    _BY_NAME[serializer.name] = serializer


def serializer_for(value: Any) -> Serializer:
    """The serializer registered for the value's type or its nearest base class."""
    _register_builtins()
    for cls in type(value).__mro__:
        found = _BY_TYPE.get(cls)
        if found is not None:
            return found
    raise ArtifactTypeError(
        f"no serializer for a value of type {type(value).__module__}.{type(value).__qualname__}",
        fix="return a DataFrame, numpy array, JSON value or Path (e.g. save the model to a file), "
        "or register one with noria.pipelines.register_serializer(type, serializer)",
    )


def dump_artifact(value: Any, folder: Path) -> str:
    """Write ``value`` into the empty ``folder`` with its serializer and a meta.json; returns the name."""
    serializer = serializer_for(value)
    serializer.dump(value, folder)
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    (folder / META).write_text(json.dumps({"serializer": serializer.name, "type": kind}), encoding="utf-8")
    return serializer.name


def load_artifact(folder: Path) -> Any:
    """Read back what :func:`dump_artifact` wrote."""
    _register_builtins()
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    serializer = _BY_NAME.get(meta["serializer"])
    if serializer is None:
        raise ArtifactTypeError(
            f"artifact {folder.name} was written by serializer {meta['serializer']!r}, not registered here",
            fix="import the module that calls register_serializer() for it before loading",
        )
    return serializer.load(folder)


def _register_builtins() -> None:
    if _BUILTINS:
        return
    _BUILTINS.append(True)
    import numpy as np
    import pandas as pd

    _register(pd.DataFrame, ParquetSerializer())
    _register(np.ndarray, NumpySerializer())
    json_serializer = JsonSerializer()
    for cls in (dict, list, str, int, float, bool, type(None)):
        _register(cls, json_serializer)
    _register(Path, PathSerializer())
