from __future__ import annotations

import types

import noria.pipelines


def test_all_is_exactly_the_public_names() -> None:
    # The package exports lazily (noria.pipelines.config must stay light): every name in
    # __all__ is an export that resolves, and every export is in __all__.
    assert set(noria.pipelines.__all__) == set(noria.pipelines._EXPORTS)
    for name in noria.pipelines.__all__:
        value = getattr(noria.pipelines, name)
        assert value is not None and not isinstance(value, types.ModuleType), name


def test_importing_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, noria.pipelines; print(sorted({'pandas', 'rich', 'boto3', 'pyarrow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
