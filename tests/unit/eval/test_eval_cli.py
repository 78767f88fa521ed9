"""`tunewise eval / report / runs / compare` through the real command line entry point."""

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


def test_eval_json_then_runs_compare_and_report(lora_run, small_eval, capsys):
    section = {**small_eval, "metrics": ["token_f1"], "forgetting": {"enabled": False},
               "gate": {"token_f1": ">= 0.99"}}
    run_dir = lora_run("cli-a", eval_section=section)
    lora_run("cli-b", seed=1)

    code, out, _ = _run(["eval", "cli-a", "--json", "--max-examples", "2"], capsys)
    assert code == 1  # the gate failed
    payload = json.loads(out)
    assert payload["report"]["n_examples"] == 2 and payload["gate"]["passed"] is False
    assert (run_dir / "eval.json").is_file() and (run_dir / "gate.json").is_file()

    code, out, _ = _run(["runs", "--json"], capsys)
    runs = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(runs) == {"cli-a", "cli-b"}
    assert (runs["cli-a"]["state"], runs["cli-a"]["reason"], runs["cli-a"]["gate"]) == ("failed", "gate", "failed")
    assert "token_f1" in runs["cli-a"]["metrics"] and runs["cli-b"]["gate"] is None

    code, out, _ = _run(["compare", "cli-a", "cli-b", "--json"], capsys)
    assert [r["name"] for r in json.loads(out)] == ["cli-a", "cli-b"]
    code, out, _ = _run(["compare", "cli-a", "cli-b"], capsys)
    assert code == 0 and "cli-a" in out and "token_f1" in out

    code, out, _ = _run(["report", "cli-a", "--json"], capsys)
    assert json.loads(out)["report"] == str(run_dir / "report.html")


def test_unknown_run_and_bad_override_are_one_line_errors(lora_run, capsys):
    lora_run("cli-c")
    code, _, err = _run(["eval", "no-such-run"], capsys)
    assert code == 2 and "run 'no-such-run' not found" in err and "Traceback" not in err
    code, _, err = _run(["eval", "cli-c", "--set", "gate.exact_match=high"], capsys)
    assert code == 2 and "eval.gate" in err and "Traceback" not in err


def test_set_overrides_keep_dotted_gate_keys_whole(tmp_path):
    import yaml

    from tunewise.cli.eval import _spec_with_overrides
    from tunewise.eval.spec import eval_spec_of

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"eval": {"gate": {"exact_match": ">= 0.8"}}}))
    spec = _spec_with_overrides(tmp_path, ["gate.forgetting.ppl_increase=<= 10%", "eval.max_new_tokens=16"])
    espec = eval_spec_of(spec)
    assert espec.gate == {"exact_match": ">= 0.8", "forgetting.ppl_increase": "<= 10%"}
    assert espec.max_new_tokens == 16
