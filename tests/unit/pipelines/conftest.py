from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from noria.pipelines import LocalArtifactStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


@pytest.fixture
def counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "counts"
    folder.mkdir()
    monkeypatch.setenv("PIPE_TEST_COUNTS", str(folder))
    return folder


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A minimal Noria project whose artifacts go to <project>/.noria/artifacts."""
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "noria.yaml").write_text(
        textwrap.dedent(
            """\
            project: pipetest
            data:
              source: {kind: directory, path: raw}
              tables:
                t:
                  file: t.csv
                  primary_key: [id]
                  columns:
                    id: {type: int}
            """
        )
    )
    return folder


@pytest.fixture
def fresh_env(counter: Path) -> dict[str, str]:
    """The environment for a fresh python process that can import the test flows and counts steps."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NORIA_", "PIPE_TEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO / "src")])
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PIPE_TEST_COUNTS"] = str(counter)
    return env


@pytest.fixture
def python() -> str:
    return PYTHON if Path(PYTHON).exists() else sys.executable


if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(autouse=True)
def _isolated_registry() -> Iterator[None]:
    from noria.pipelines import _registry

    saved = dict(_registry._REGISTERED)
    yield
    _registry._REGISTERED.clear()
    _registry._REGISTERED.update(saved)
