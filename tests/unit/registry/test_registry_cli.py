"""`tunewise register / promote / rollback / models` through the real command line entry point."""

from __future__ import annotations

import json

import pytest

from tunewise.cli import main


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_register_promote_rollback_and_models(gated_run, capsys):
    first, second = gated_run("cli-one", seed=5), gated_run("cli-two", seed=6)
    failed = gated_run("cli-bad", gate="failed", seed=7)
    for run_dir in (first, second, failed):
        code, out, _ = _run(["register", str(run_dir), "--name", "clim", "--json"], capsys)
        assert code == 0, out
    code, _, err = _run(["promote", "clim", "3", "--to", "production"], capsys)
    assert code == 2 and "failed its evaluation gate" in err and "Traceback" not in err
    assert _run(["promote", "clim", "1", "--to", "production"], capsys)[0] == 0
    code, out, _ = _run(["promote", "clim", "2", "--to", "production", "--json"], capsys)
    assert json.loads(out)["from"] == "1"
    code, out, _ = _run(["rollback", "clim"], capsys)
    assert code == 0 and "rollback production 2 -> 1" in out

    code, out, _ = _run(["models", "--json"], capsys)
    model = next(m for m in json.loads(out) if m["name"] == "clim")
    assert model["aliases"] == {"production": "1"}
    assert [(v["version"], v["gate"]) for v in model["versions"]] == [("1", "passed"), ("2", "passed"), ("3", "failed")]
    code, out, _ = _run(["models", "clim"], capsys)
    assert code == 0 and "alice: rollback production 2 -> 1" in out
    code, _, err = _run(["models", "nothing-here"], capsys)
    assert code == 2 and "no registered model named" in err
