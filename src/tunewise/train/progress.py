"""Progress display: a rich bar with loss, tokens/s and ETA on a terminal; plain lines otherwise."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    def __init__(self, total_steps: int, start_step: int, *, console: Console | None = None):
        self.total = total_steps
        self.start = start_step
        self.console = console or Console(stderr=True)
        self.interactive = self.console.is_terminal
        self._last_line = 0.0
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> TrainingProgress:
        if self.interactive:
            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.total, completed=self.start, stats="")
        return self

    def update(self, step: int, *, loss: float, tokens_per_s: float, val_loss: float | None = None) -> None:
        stats = f"loss {loss:.4f}  {tokens_per_s:,.0f} tok/s" + (f"  val {val_loss:.4f}" if val_loss is not None else "")
        if self._progress is not None:
            self._progress.update(self._task, completed=step, stats=stats)
            return
        now = time.monotonic()
        # Without a terminal (CI, logs): a line every 10 s, plus validations and the last step.
        if now - self._last_line >= 10 or val_loss is not None or step == self.total:
            self._last_line = now
            print(f"step {step}/{self.total}  {stats}", file=sys.stderr, flush=True)

    def note(self, message: str | None) -> None:
        """A line of its own above the bar (or among the plain lines); None prints nothing."""
        if message is None:
            return
        if self._progress is not None:
            self._progress.console.print(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
