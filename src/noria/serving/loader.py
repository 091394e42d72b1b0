"""The model holder: which versions serve now, and swapping them without downtime.

A poller thread asks the registry every ``poll_seconds`` where the aliases point (and
``/reload`` asks at once). When an alias has moved, the new version is loaded and prepared
*beside* the old one, then the reference is swapped in one assignment. A request reads the
reference once when it starts, so requests in flight finish on the version they started
with; the old version is freed when the last of them is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from noria.errors import NoriaError
from noria.serving.model import ServedModel
from noria.serving.sources import LoadedVersion, ModelSource, VersionRef

log = logging.getLogger("noria.serving")

Builder = Callable[[LoadedVersion], ServedModel]


@dataclass(frozen=True)
class ReloadResult:
    changed: bool
    previous_version: int | None
    version: int | None
    challenger_version: int | None
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "changed": self.changed,
            "previous_version": self.previous_version,
            "version": self.version,
            "challenger_version": self.challenger_version,
        }


class ModelHolder:
    """Holds @champion (and @challenger when A/B or shadow is on); reloads when aliases move."""

    def __init__(
        self,
        source: ModelSource,
        build: Builder,
        *,
        alias: str = "champion",
        challenger_alias: str | None = None,
        poll_seconds: float = 10.0,
        on_swap: Callable[[ServedModel, str], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.build = build
        self.alias = alias
        self.challenger_alias = challenger_alias
        self.poll_seconds = poll_seconds
        self.champion: ServedModel | None = None
        self.challenger: ServedModel | None = None
        self.problems: list[str] = []
        self._on_swap = on_swap
        self._on_error = on_error
        self._lock = threading.Lock()  # one reload at a time (poller or /reload)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self.champion is not None

    def _fetch(self, alias: str, current: ServedModel | None) -> ServedModel | None:
        """The version ``alias`` points at, loaded; ``current`` if it has not moved."""
        ref: VersionRef = self.source.resolve(alias)
        if current is not None and current.version == ref.version and current.name == ref.name:
            return current
        log.info("loading %s version %s (@%s)", ref.name, ref.version, alias)
        return self.build(self.source.load(ref, alias))

    def reload(self) -> ReloadResult:
        """Check the aliases now; swap what moved. Failures keep the old version serving."""
        with self._lock:
            previous = self.champion
            problems: list[str] = []
            try:
                champion = self._fetch(self.alias, previous)
            except NoriaError as exc:
                champion = previous
                problems.append(f"@{self.alias}: {exc}")
            except Exception as exc:  # a broken artifact must not take the service down
                champion = previous
                problems.append(f"@{self.alias}: {type(exc).__name__}: {exc}")
            challenger = self.challenger
            if self.challenger_alias:
                try:
                    challenger = self._fetch(self.challenger_alias, self.challenger)
                except NoriaError as exc:
                    challenger = None  # no challenger: every request goes to the champion
                    problems.append(f"@{self.challenger_alias}: {exc}")
                except Exception as exc:
                    problems.append(f"@{self.challenger_alias}: {type(exc).__name__}: {exc}")
            # Swap: single reference assignments; requests already running keep their object.
            if champion is not previous and champion is not None:
                self.champion = champion
                if self._on_swap:
                    self._on_swap(champion, self.alias)
            if challenger is not self.challenger:
                self.challenger = challenger
                if challenger is not None and self._on_swap:
                    self._on_swap(challenger, self.challenger_alias or "challenger")
            self.problems = problems
            for problem in problems:
                log.warning("model reload: %s", problem)
                if self._on_error:
                    self._on_error(problem)
            return ReloadResult(
                changed=champion is not previous,
                previous_version=previous.version if previous else None,
                version=self.champion.version if self.champion else None,
                challenger_version=self.challenger.version if self.challenger else None,
                problems=tuple(problems),
            )

    # -- the poller ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.poll_seconds <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="noria-model-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.reload()
            except Exception:  # never let the poller die
                log.exception("model poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


__all__ = ["ModelHolder", "ReloadResult"]
