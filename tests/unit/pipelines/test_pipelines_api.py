from __future__ import annotations

import types

import noria.pipelines


def test_all_is_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(noria.pipelines).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(noria.pipelines.__all__) == public


def test_importing_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, noria.pipelines; print(sorted({'pandas', 'rich', 'boto3', 'pyarrow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
