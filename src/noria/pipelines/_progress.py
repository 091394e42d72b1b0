"""One live line per step: pending, running (spinner and clock), cached, done or failed."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID

_MARKS = {"pending": "[dim]·[/]", "cached": "[cyan]=[/]", "resumed": "[cyan]=[/]", "ran": "[green]✓[/]"}
_LABELS = {
    "pending": "[dim]pending[/]",
    "running": "[yellow]running[/]",
    "cached": "[cyan]cached[/]",
    "resumed": "[cyan]resumed[/]",
    "ran": "[green]done[/]",
    "failed": "[red]failed[/]",
}


class StepProgress:
    """Context manager showing the steps of one run; does nothing when ``enabled`` is False."""

    def __init__(self, title: str, steps: Iterable[str], *, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self._steps = list(steps)
        self._tasks: dict[str, TaskID] = {}
        self._progress: Progress | None = None
        if not enabled:
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn

        class _Mark(SpinnerColumn):
            def render(self, task: Task) -> Any:
                state = task.fields["state"]
                if state == "running":
                    return super().render(task)
                from rich.text import Text

                return Text.from_markup(_MARKS.get(state, "[red]x[/]"))

        width = max((len(s) for s in self._steps), default=4)
        self._progress = Progress(
            _Mark(),
            TextColumn(f"{{task.description:<{width}}}"),
            TextColumn("{task.fields[label]}"),
            TextColumn("{task.fields[took]}"),
            console=console,
            transient=False,
        )
        self._progress.console.print(f"[bold]{title}[/]")
        for name in self._steps:
            self._tasks[name] = self._progress.add_task(
                name, total=1, start=False, state="pending", label=_LABELS["pending"], took=""
            )

    def __enter__(self) -> StepProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def running(self, name: str) -> None:
        if self._progress is not None:
            task = self._tasks[name]
            self._progress.start_task(task)
            self._progress.update(task, state="running", label=_LABELS["running"])

    def finished(self, name: str, state: str, seconds: float) -> None:
        """``state`` is ran, cached, resumed or failed."""
        if self._progress is not None:
            took = f"{seconds:.2f}s" if state in ("ran", "failed") else ""
            self._progress.update(self._tasks[name], completed=1, state=state, label=_LABELS[state], took=took)
