"""evaluate_run end to end on a LoRA run of the tiny model: metrics for both models, judge, gate, status."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tunewise.eval import EvalSpec, evaluate_and_gate, evaluate_run, read_report, read_verdict, run_gate, write_results
from tunewise.eval.errors import EvalError
from tunewise.eval.runs import read_status


def test_lora_run_report_has_base_and_tuned_metrics_judge_and_spectrum(lora_run, small_eval, tiny_model_dir):
    section = {**small_eval, "metrics": ["exact_match", "token_f1", "rouge_l", "bleu", "chrf", "json_valid"],
               "judge": {"model": str(tiny_model_dir)}}
    run_dir = lora_run(eval_section=section)
    report = evaluate_run(run_dir)
    assert report.n_examples == 4 and report.method == "lora"
    for key in ("val_loss", "perplexity", "exact_match", "token_f1", "rouge_l", "bleu", "chrf", "json_valid"):
        assert key in report.metrics and key in report.base_metrics
    # the adapter changes the model, so the held-out loss differs from the base's
    assert report.metrics["val_loss"] != pytest.approx(report.base_metrics["val_loss"], abs=1e-6)
    assert report.gain["val_loss"] == pytest.approx(report.metrics["val_loss"] - report.base_metrics["val_loss"])
    assert report.judge is not None and report.judge.n == 4 and 0 <= report.judge.ci_low <= report.judge.ci_high <= 1
    assert report.spectrum is not None and len(report.spectrum.modules) == 4  # q and v in two layers
    assert report.forgetting is not None and report.forgetting.questions == 3
    assert len(report.samples) == 2 and report.samples[0].reference == "Yellow."


def test_failed_gate_marks_the_run_failed_and_a_later_pass_restores_it(lora_run, small_eval):
    section = {**small_eval, "metrics": ["exact_match"], "forgetting": {"enabled": False},
               "gate": {"exact_match": ">= 0.8", "val_loss": "< 100"}}
    run_dir = lora_run(eval_section=section)
    report, verdict = evaluate_and_gate(run_dir)
    assert not verdict.passed
    status = read_status(run_dir)
    assert (status["state"], status["reason"]) == ("failed", "gate") and "exact_match" in status["error"]
    stored = read_verdict(run_dir)
    assert [c.key for c in stored.criteria] == ["exact_match", "val_loss"]
    assert [c.passed for c in stored.criteria] == [False, True]
    assert read_report(run_dir).metrics == report.metrics

    looser = run_gate(report, {"val_loss": "< 100"})
    write_results(run_dir, report, looser)
    status = read_status(run_dir)
    assert status["state"] == "completed" and "reason" not in status and "error" not in status


def test_eval_spec_from_job_spec_like_objects(lora_run, small_eval):
    class FakeJobSpec:  # what JobSpec looks like once it has an `eval` field
        eval = EvalSpec(**{**small_eval, "metrics": [], "samples": 0, "forgetting": {"enabled": False}})
        train = None
        data = None

    report = evaluate_run(lora_run(), FakeJobSpec())
    assert report.n_examples == 4 and report.forgetting is None and "exact_match" not in report.metrics


def test_missing_validation_data_is_a_warning_not_a_crash(lora_run, small_eval):
    run_dir = lora_run(eval_section={**small_eval, "forgetting": {"enabled": False}})
    (run_dir / "data" / "validation.jsonl").unlink()
    report = evaluate_run(run_dir)
    assert report.n_examples == 0 and "validation.jsonl is missing" in report.warnings[0]


class _JudgeEndpoint(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        reply = {"choices": [{"message": {"role": "assistant", "content": "A"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_endpoint():
    server = HTTPServer(("127.0.0.1", 0), _JudgeEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _JudgeEndpoint.seen = []
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_openai_compatible_judge_over_http(lora_run, small_eval, judge_endpoint, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    section = {**small_eval, "max_new_tokens": 6, "metrics": ["token_f1"], "forgetting": {"enabled": False},
               "judge": {"model": "judge-large", "base_url": judge_endpoint, "api_key_env": "JUDGE_KEY"}}
    report = evaluate_run(lora_run(eval_section=section))
    asked = _JudgeEndpoint.seen
    assert report.judge.judge == f"judge-large @ {judge_endpoint}"
    assert report.judge.n == 4 and len(asked) == 4 and report.judge.ties == 0  # answers differ: all judged
    for path, auth, body in asked:
        assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
        assert body["model"] == "judge-large" and body["temperature"] == 0
        assert "Answer A:" in body["messages"][-1]["content"]
    assert report.judge.first_position_share == 1.0  # this judge always says "A"


def test_unreachable_judge_is_a_clear_error(lora_run, small_eval):
    section = {**small_eval, "max_examples": 1, "max_new_tokens": 2, "metrics": ["token_f1"],
               "forgetting": {"enabled": False}, "spectrum": False,
               "judge": {"model": "m", "base_url": "http://127.0.0.1:9", "timeout_s": 2}}
    run_dir = lora_run(eval_section=section)
    with pytest.raises(EvalError, match="cannot be reached"):
        evaluate_run(run_dir)
