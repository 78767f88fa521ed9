"""OpenAI requests become tunewise specs: methods, hyperparameters, "auto", graders, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewise.jobs.graders import check_grader, grade, write_grader_module
from tunewise.jobs.openai_request import auto_epochs, method_of, method_options, training_overrides
from tunewise.jobs.spec_guard import SpecGuard
from tunewise.openai_api.errors import APIError
from tunewise.openai_api.fine_tuning import JobCreate


def test_auto_epochs_follow_openais_rule():
    assert auto_epochs(10) == 10  # 100 examples' worth
    assert auto_epochs(50) == 3
    assert auto_epochs(20_000) == 1
    assert auto_epochs(1) == 25


def test_deprecated_hyperparameters_become_supervised():
    request = JobCreate(model="m", training_file="file-x", hyperparameters={"n_epochs": 2, "batch_size": "auto"})
    kind, hyper, echo = method_of(request)
    assert kind == "supervised" and hyper == {"n_epochs": 2, "batch_size": "auto"}
    assert echo["supervised"]["hyperparameters"] == {"batch_size": "auto", "learning_rate_multiplier": "auto",
                                                     "n_epochs": 2}
    train = training_overrides(kind, hyper, n_examples=500, default_lr=2e-4)
    assert train == {"epochs": 2}


def test_dpo_beta_and_learning_rate_multiplier():
    request = JobCreate(model="m", training_file="file-x", method={
        "type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "learning_rate_multiplier": 0.5, "batch_size": 8}}})
    kind, hyper, _ = method_of(request)
    assert kind == "dpo" and method_options(kind, hyper) == {"beta": 0.2}
    assert training_overrides(kind, hyper, n_examples=40, default_lr=5e-5) == {
        "epochs": 3, "micro_batch_size": 8, "learning_rate": 2.5e-5}


def test_hyperparameters_on_the_wrong_method_are_refused():
    request = JobCreate(model="m", training_file="file-x", hyperparameters={"n_epochs": 2},
                        method={"type": "dpo"})
    with pytest.raises(APIError) as err:
        method_of(request)
    assert err.value.param == "hyperparameters"


def test_graders_map_onto_scoring_rules(tmp_path):
    grader = {"type": "string_check", "name": "yes", "input": "{{sample.output_text}}", "reference": "Yes",
              "operation": "ilike"}
    check_grader(grader)
    assert grade(grader, "q", "oh yes indeed") == 1.0 and grade(grader, "q", "no") == 0.0
    fuzzy = {"type": "text_similarity", "name": "f", "input": "{{sample.output_text}}", "reference": "hello",
             "evaluation_metric": "fuzzy_match"}
    assert 0.5 < grade(fuzzy, "q", "helo") < 1.0
    rule = write_grader_module(tmp_path, grader)
    from tunewise.align.scoring import load_score_function

    assert load_score_function(rule)("q", "YES") == 1.0


@pytest.mark.parametrize("grader, param", [
    ({"type": "python", "source": "def grade(s, i): return 1"}, "method.reinforcement.grader.type"),
    ({"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
      "operation": "eq"}, "method.reinforcement.grader.reference"),
    ({"type": "string_check", "input": "{{item.question}}", "reference": "x", "operation": "eq"},
     "method.reinforcement.grader.input"),
])
def test_graders_that_cannot_run_are_refused_naming_the_field(grader, param):
    with pytest.raises(APIError) as err:
        check_grader(grader)
    assert err.value.status == 400 and err.value.param == param


def _guard(tmp_path):
    def file_path(file_id, param):
        if file_id != "file-mine0000000000000000":
            raise APIError(404, f"{param}: no file {file_id}", param=param)
        return tmp_path / "file-mine.jsonl"

    return SpecGuard(models={"tiny": "/models/tiny"}, file_path=file_path,
                     run_path=lambda job_id, param: Path("/runs") / job_id)


@pytest.mark.parametrize("spec, param", [
    ({"data": {"train": "/etc/passwd"}}, "spec.data.train"),
    ({"data": {"train": "file-mine0000000000000000"}, "checkpoint": {"dir": "/tmp/x"}}, "spec.checkpoint.dir"),
    ({"data": {"train": "file-mine0000000000000000"}, "method": {"name": "grpo", "reward_functions": ["os:system"]}},
     "spec.method.reward_functions"),
    ({"data": {"train": "file-mine0000000000000000"},
      "eval": {"judge": {"model": "tiny", "base_url": "http://evil", "api_key_env": "AWS_SECRET"}}},
     "spec.eval.judge.base_url"),
    ({"base_model": "/models/other", "data": {"train": "file-mine0000000000000000"}}, "spec.base_model"),
    ({"stages": [{"name": "ftjob-someone-elses", "data": {"train": "file-mine0000000000000000"}}],
      "base_model": "tiny"}, "spec.stages[0].name"),
])
def test_spec_guard_refuses_what_would_escape_the_team(tmp_path, spec, param):
    with pytest.raises(APIError) as err:
        _guard(tmp_path).apply({"base_model": "tiny", **spec})
    assert err.value.param == param


def test_spec_guard_refuses_a_tracking_target_the_server_cannot_import(tmp_path, monkeypatch):
    import tunewise.tracking

    monkeypatch.setattr(tunewise.tracking, "target_installed", lambda target: target == "tensorboard")
    spec = {"base_model": "tiny", "tracking": {"report_to": ["tensorboard", "wandb"]}}
    with pytest.raises(APIError) as err:
        _guard(tmp_path).apply(spec)
    assert err.value.param == "spec.tracking.report_to[1]" and "wandb is not installed" in err.value.message
    monkeypatch.setattr(tunewise.tracking, "target_installed", lambda target: True)
    assert _guard(tmp_path).apply(spec)["tracking"] == spec["tracking"]


def test_spec_guard_resolves_files_and_models(tmp_path):
    guard = _guard(tmp_path)
    out = guard.apply({"base_model": "tiny", "data": {"train": "file-mine0000000000000000"}})
    assert out == {"base_model": "/models/tiny", "data": {"train": str(tmp_path / "file-mine.jsonl")}}
    assert guard.file_ids == ["file-mine0000000000000000"]
