"""Other libraries' output goes to the log file; tunewise's own warnings stay on the console."""

from __future__ import annotations

import logging
import os
import warnings

import pytest

from tunewise.logs import LEVEL_ENV, quiet_libraries, routed, run_log_path
from tunewise.spec import SpecWarning


def test_third_party_records_go_to_the_file_and_ours_to_stderr_too(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(LEVEL_ENV, raising=False)
    log = run_log_path(tmp_path)
    root_handlers = list(logging.getLogger().handlers)
    with routed(log):
        logging.getLogger("somelibrary.core").warning("a library's notice")
        logging.getLogger("tunewise.train.checkpoint").warning("could not prune")
    err = capsys.readouterr().err
    assert "a library's notice" not in err and "could not prune" in err
    text = log.read_text()
    assert "WARNING somelibrary.core: a library's notice" in text and "could not prune" in text
    assert logging.getLogger().handlers == root_handlers  # restored


def test_the_log_level_shows_library_records_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(LEVEL_ENV, "info")
    with routed(tmp_path / "x.log"):
        logging.getLogger("somelibrary").info("loading shards")
    assert "INFO somelibrary: loading shards" in capsys.readouterr().err
    assert "loading shards" in (tmp_path / "x.log").read_text()


def test_library_warnings_go_to_the_file_and_ours_where_they_went(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(LEVEL_ENV, raising=False)
    shown = warnings.showwarning
    with pytest.warns(SpecWarning, match="ours"):  # a test's recorder still sees tunewise's warnings
        with routed(tmp_path / "w.log"):
            warnings.warn_explicit("`old_name` is deprecated", FutureWarning, "/site-packages/somelib/x.py", 7)
            warnings.warn("ours", SpecWarning)
    assert warnings.showwarning is shown
    assert "deprecated" not in capsys.readouterr().err
    assert "somelib/x.py:7: FutureWarning: `old_name` is deprecated" in (tmp_path / "w.log").read_text()


def test_scopes_nest_and_the_innermost_file_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    with routed():
        logging.getLogger("lib").warning("outside the run")
        with routed(tmp_path / "run" / "run.log"):
            logging.getLogger("lib").warning("inside the run")
        logging.getLogger("lib").warning("after the run")
    workspace_log = (tmp_path / "home" / "logs" / "tunewise.log").read_text()
    assert "outside the run" in workspace_log and "after the run" in workspace_log
    assert "inside the run" not in workspace_log
    assert "inside the run" in (tmp_path / "run" / "run.log").read_text()


def test_transformers_propagates_and_draws_no_bars_inside_then_is_restored(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(LEVEL_ENV, raising=False)
    from transformers.utils import logging as hf_logging

    library = logging.getLogger("transformers")
    def streams():  # pytest hangs capture handlers of its own on non-propagating loggers: leave those out
        return [h for h in library.handlers if type(h) is logging.StreamHandler]

    handlers, propagate, bars = streams(), library.propagate, hf_logging.is_progress_bar_enabled()
    with routed(tmp_path / "t.log"):
        quiet_libraries()
        assert not hf_logging.is_progress_bar_enabled()
        hf_logging.get_logger("transformers.modeling_utils").warning("weights not initialized")
    assert "weights not initialized" not in capsys.readouterr().err
    assert "weights not initialized" in (tmp_path / "t.log").read_text()
    assert streams() == handlers and library.propagate == propagate
    assert hf_logging.is_progress_bar_enabled() == bars


def test_an_unwritable_log_file_never_stops_the_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with routed(blocker / "run.log"):  # its parent is a file: the log cannot be opened
        logging.getLogger("lib").warning("lost")
    assert "Traceback" not in capsys.readouterr().err


def test_verbose_sets_the_level_for_the_command_and_its_re_execution(monkeypatch):
    from tunewise.cli import main

    monkeypatch.setenv(LEVEL_ENV, "")  # restored after the test
    with pytest.raises(SystemExit) as exc:
        main(["--verbose", "methods", "--json"])
    assert exc.value.code == 0
    assert os.environ[LEVEL_ENV] == "INFO"
