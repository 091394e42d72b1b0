"""What the root command passes down to every sub-command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from noria.config import Project


@dataclass
class State:
    project: Path | None = None
    profile: str | None = None
    debug: bool = False

    def load(self) -> Project:
        """The project named by --project/--profile (or found from the current folder)."""
        from noria.config import load_project

        return load_project(self.project, self.profile)
