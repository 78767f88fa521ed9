"""Other libraries' output goes to a log file; the console keeps tunewise's own lines.

transformers, peft, trl, bitsandbytes, accelerate, datasets, mlflow and torch log warnings, raise
deprecation warnings and draw progress bars that interleave with tunewise's progress and tables.
Inside `routed(path)`:

  - every log record that reaches the root logger is appended to `path` (transformers, datasets
    and mlflow print through handlers of their own; they are told to propagate instead);
  - Python warnings raised outside tunewise are logged there too (tunewise's own still show);
  - progress bars of transformers, huggingface_hub and datasets are off;
  - tunewise's own log records at WARNING and above still reach stderr.

A run routes to its own `<run>/run.log`; anything else to `$TUNEWISE_HOME/logs/tunewise.log`.
TUNEWISE_LOG_LEVEL (DEBUG, INFO, WARNING, ...; `tunewise --verbose` sets INFO) shows every record
at that level and above on stderr as well, and keeps the progress bars. Scopes nest: the innermost
one's file receives the records, and the outermost restores the libraries' own settings on exit.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LEVEL_ENV = "TUNEWISE_LOG_LEVEL"
RUN_LOG = "run.log"
WORKSPACE_LOG_MAX_BYTES = 5 * 2**20  # the workspace log rotates, keeping two older files
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PACKAGE_DIR = str(Path(__file__).resolve().parent)

# Libraries (by module) whose loggers print through stream handlers of their own, most without
# propagating to the root logger; mlflow configures alembic's, huey's and sqlalchemy's that way too.
# What one of them prints while it is being imported comes before it can be adopted.
_SELF_PRINTING = {
    "transformers": ("transformers",),
    "datasets": ("datasets",),
    "mlflow": ("mlflow", "alembic", "huey", "sqlalchemy.engine"),
    "deepspeed": ("DeepSpeed",),
}

class _Target:
    """One open scope's log file (None: the workspace log); compared by identity, not by path."""

    def __init__(self, path: Path | None):
        self.path = path


_lock = threading.RLock()
_depth = 0
_targets: list[_Target] = []  # the open scopes' files, innermost last
_saved: dict[str, Any] = {}


def console_level() -> int | None:
    """The level TUNEWISE_LOG_LEVEL asks to show on stderr, or None (a bad value is reported, then ignored)."""
    value = os.environ.get(LEVEL_ENV, "").strip().upper()
    if not value:
        return None
    level = logging.getLevelName(value)
    if isinstance(level, int):
        return level
    print(f"warning: {LEVEL_ENV}={value!r} is not a level (DEBUG, INFO, WARNING, ERROR); ignored", file=sys.stderr)
    return None


def run_log_path(run_dir: str | Path) -> Path:
    """Where a run's third-party output goes."""
    return Path(run_dir) / RUN_LOG


def workspace_log_path() -> Path:
    from tunewise.workspace import home

    return home() / "logs" / "tunewise.log"


@contextmanager
def routed(path: str | Path | None = None) -> Iterator[None]:
    """Route other libraries' logging, warnings and progress bars to `path` (default: the workspace log).

    Args:
        path: the log file; a run passes `run_log_path(run_dir)`.
    """
    global _depth
    target = _Target(Path(path) if path is not None else None)
    with _lock:
        if _depth == 0:
            _install()
        _depth += 1
        _targets.append(target)
    try:
        quiet_libraries()
        yield
    finally:
        with _lock:
            _targets.remove(target)  # this scope's own entry, even if another thread's opened later
            _depth -= 1
            if _depth and target.path is not None and all(t.path != target.path for t in _targets):
                _saved["handlers"][0].close_file(target.path)  # a long-lived process keeps no finished run's file
            if _depth == 0:
                _uninstall()


@contextmanager
def quieted() -> Iterator[None]:
    """For code that loads models: inside a routed scope, quiet the libraries imported so far;
    outside one (tunewise used as a library), route to the workspace log for the duration."""
    if _depth:
        quiet_libraries()
        yield
        return
    with routed():
        yield


def quiet_libraries() -> None:
    """Inside `routed`: make the libraries imported so far propagate and draw no bars. Cheap; call it
    again after importing transformers, datasets or mlflow (models.load does)."""
    with _lock:
        if _depth == 0:
            return
        for module, loggers in _SELF_PRINTING.items():
            if module in sys.modules:
                for name in loggers:
                    _adopt_logger(name)
        if not _saved.get("verbose"):
            _progress_bars(enabled=False)


def refresh_console_level() -> None:
    """Re-read TUNEWISE_LOG_LEVEL inside a routed scope (`tunewise --verbose` sets it once the scope is open)."""
    with _lock:
        if not _depth:
            return
        level = console_level()
        console = _saved["handlers"][1]
        for console_filter in console.filters:
            console_filter.level = level
        _saved["verbose"] = level is not None
        root = logging.getLogger()
        if level is not None:
            root.setLevel(min(level, root.getEffectiveLevel()))
            _progress_bars(enabled=True)


# --- installing and restoring --------------------------------------------------------------------


class _RoutingHandler(logging.Handler):
    """Writes each record to the innermost scope's file, opened on the first record; never raises."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter(FORMAT))
        self._files: dict[Path, logging.Handler] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            target = _targets[-1].path if _targets else None
            path = target if target is not None else workspace_log_path()
            handler = self._files.get(path) or self._open(path, rotate=target is None)
            handler.emit(record)
        except Exception:  # a log file that cannot be written must not stop training
            pass

    def _open(self, path: Path, *, rotate: bool) -> logging.Handler:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler
        if rotate:
            handler = logging.handlers.RotatingFileHandler(path, maxBytes=WORKSPACE_LOG_MAX_BYTES, backupCount=2,
                                                           encoding="utf-8")
        else:
            handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(self.formatter)
        self._files[path] = handler
        return handler

    def close_file(self, path: Path) -> None:
        handler = self._files.pop(path, None)
        if handler is not None:
            handler.close()

    def close(self) -> None:
        for handler in self._files.values():
            handler.close()
        self._files.clear()
        super().close()


class _ConsoleFilter(logging.Filter):
    """stderr shows tunewise's own warnings, and everything at TUNEWISE_LOG_LEVEL when it is set."""

    def __init__(self, level: int | None):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if self.level is not None and record.levelno >= self.level:
            return True
        return record.name.split(".")[0] == "tunewise" and record.levelno >= logging.WARNING


def _install() -> None:
    root = logging.getLogger()
    level = console_level()
    file_handler = _RoutingHandler()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.addFilter(_ConsoleFilter(level))
    root.addHandler(file_handler)
    root.addHandler(console)
    _saved.update(root_level=root.level, handlers=(file_handler, console), verbose=level is not None,
                  showwarning=warnings.showwarning, loggers={}, bars={})
    if level is not None and level < root.getEffectiveLevel():
        root.setLevel(level)
    warnings.showwarning = _showwarning_router(warnings.showwarning)


def _uninstall() -> None:
    root = logging.getLogger()
    for handler in _saved.get("handlers", ()):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(_saved.get("root_level", logging.WARNING))
    warnings.showwarning = _saved.get("showwarning", warnings.showwarning)
    for name, (handlers, propagate) in _saved.get("loggers", {}).items():
        logger = logging.getLogger(name)
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = propagate
    for library, enabled in _saved.get("bars", {}).items():
        _BARS[library](enabled)
    _saved.clear()


def _adopt_logger(name: str) -> None:
    """A library logger that prints through its own stream handler: propagate to the root instead."""
    if name in _saved["loggers"]:
        return
    logger = logging.getLogger(name)
    streams = [h for h in logger.handlers if type(h) is logging.StreamHandler]
    _saved["loggers"][name] = (streams, logger.propagate)
    for handler in streams:
        logger.removeHandler(handler)
    logger.propagate = True


def _hub_bars(enabled: bool | None) -> bool:
    from huggingface_hub import utils as hub_utils

    before = not hub_utils.are_progress_bars_disabled()
    if enabled is not None and enabled != before:
        hub_utils.enable_progress_bars() if enabled else hub_utils.disable_progress_bars()
    return before


def _transformers_bars(enabled: bool | None) -> bool:
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    if enabled is not None and enabled != before:
        hf_logging.enable_progress_bar() if enabled else hf_logging.disable_progress_bar()
    return before


def _datasets_bars(enabled: bool | None) -> bool:
    import datasets

    before = datasets.is_progress_bar_enabled()
    if enabled is not None and enabled != before:
        datasets.enable_progress_bars() if enabled else datasets.disable_progress_bars()
    return before


# Progress-bar switches by module: each sets the state (None: leave it) and returns the one before.
_BARS = {"huggingface_hub": _hub_bars, "transformers": _transformers_bars, "datasets": _datasets_bars}


def _progress_bars(*, enabled: bool) -> None:
    """Switch the bars of the libraries imported so far, remembering each one's state before the scope."""
    for library, switch in _BARS.items():
        if library in sys.modules:
            before = switch(enabled)
            _saved["bars"].setdefault(library, before)


def _is_ours(category: type[Warning], filename: str) -> bool:
    return category.__module__.split(".")[0] == "tunewise" or str(filename).startswith(_PACKAGE_DIR)


def _showwarning_router(previous: Any) -> Any:
    """tunewise's warnings go where they went before (the console, or a test's recorder); others to the log."""
    logger = logging.getLogger("py.warnings")

    def show(message, category, filename, lineno, file=None, line=None):
        if _is_ours(category, filename):
            previous(message, category, filename, lineno, file, line)
            return
        logger.warning("%s:%s: %s: %s", filename, lineno, category.__name__, message)

    return show
