"""Names Noria checks in more than one place: registered model names and environment variable names.

**Model names** end up in file paths (lock files, download folders, records) and URLs, so one
rule (:func:`model_name_problem`) is applied wherever a name enters: ``model.name`` in
noria.yaml (``noria.config``) and every registry call (``noria.registry``): ASCII letters,
digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most
:data:`MAX_MODEL_NAME_LENGTH` characters, no ``..``. That excludes path separators, a leading
dot and control or invisible characters; the problem names which of them was found.

**Environment variable names** (``serving.api_keys_env``, ``orchestrators.env`` and
``orchestrators.secrets[].env``) follow :data:`ENV_NAME`: a letter or ``_``, then letters,
digits and ``_``, upper or lower case. That is POSIX's rule for a *name* (what a shell can
``export`` and what every Kubernetes version accepts). Upper case is only a convention: POSIX
leaves names with lower-case letters to applications, so ``my_keys`` is a valid variable, and
a stricter upper-case-only pattern (which ``serving.api_keys_env`` once used) refused
variables that work everywhere.

Standard library only: every layer, the config models included, may import it.
"""

from __future__ import annotations

import re
import unicodedata

MAX_MODEL_NAME_LENGTH = 100
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # with the length and ".." rules of model_name_problem
MODEL_NAME_FIX = "use letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. 'churn-model')"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # use with fullmatch (is_env_name)


def model_name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe model name ("it contains '/'", ...), or None when it is one."""
    if not name:
        return "it is empty"
    if len(name) > MAX_MODEL_NAME_LENGTH:
        return f"it is {len(name)} characters long (at most {MAX_MODEL_NAME_LENGTH})"
    if "/" in name or "\\" in name:
        return "it contains a path separator ('/' or '\\')"
    if ".." in name:
        return "it contains '..'"
    if name.startswith("."):
        return "it starts with '.'"
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return "it contains a control or invisible character"
    bad = sorted({ch for ch in name if not (ch.isascii() and (ch.isalnum() or ch in "_.-"))})
    if bad:
        return "it contains " + ", ".join(repr(ch) for ch in bad)
    if not MODEL_NAME.fullmatch(name):
        return "it must start with a letter or digit"
    return None


def is_env_name(name: object) -> bool:
    """Whether ``name`` is an environment variable name (:data:`ENV_NAME`)."""
    return isinstance(name, str) and ENV_NAME.fullmatch(name) is not None


__all__ = [
    "ENV_NAME",
    "MAX_MODEL_NAME_LENGTH",
    "MODEL_NAME",
    "MODEL_NAME_FIX",
    "is_env_name",
    "model_name_problem",
]
