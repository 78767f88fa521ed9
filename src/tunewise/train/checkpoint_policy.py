"""SavePolicy: when the training loop should save a checkpoint (re-exported by checkpoint.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tunewise.errors import CheckpointError

if TYPE_CHECKING:
    from tunewise.spec import CheckpointSpec


class SavePolicy:
    """When to save: every `every_steps` optimizer steps, and/or when `every_minutes` have passed.

    Call `should_save(step)` after each optimizer step and `mark_saved(step)` after saving. The
    minutes are counted from the last save (or from construction), on `clock` (seconds).
    """

    def __init__(self, every_steps: int | None, every_minutes: float | None,
                 clock: Callable[[], float] = time.monotonic):
        if every_steps is not None and every_steps < 1:
            raise CheckpointError(f"checkpoint.every_steps={every_steps} must be 1 or more (or unset)")
        if every_minutes is not None and not every_minutes > 0:
            raise CheckpointError(f"checkpoint.every_minutes={every_minutes} must be more than 0 (or unset)")
        self.every_steps = every_steps
        self.every_minutes = every_minutes
        self._clock = clock
        self._last_time_s = clock()
        self._last_step: int | None = None

    @classmethod
    def from_spec(cls, spec: CheckpointSpec, clock: Callable[[], float] = time.monotonic) -> SavePolicy:
        return cls(spec.every_steps, spec.every_minutes, clock=clock)

    def should_save(self, step: int) -> bool:
        if step == self._last_step:
            return False  # already saved this step (e.g. both rules fire)
        if self.every_steps and step > 0 and step % self.every_steps == 0:
            return True
        return bool(self.every_minutes) and self._clock() - self._last_time_s >= self.every_minutes * 60

    def mark_saved(self, step: int) -> None:
        self._last_step = step
        self._last_time_s = self._clock()
