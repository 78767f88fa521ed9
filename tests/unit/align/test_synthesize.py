"""AI feedback: judges (rule, model, endpoint, template) and the synthesized preference file."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.unit.align.conftest import FIXTURES, align_spec
from tunewise.align.judges import EndpointJudge, JudgeError, ModelJudge, ScoreJudge, load_template, make_judge
from tunewise.align.synthesize import synthesize_preferences
from tunewise.errors import DataError, SpecError

RULE = f"{FIXTURES / 'rules.py'}:short_answer"
PROMPT = [{"role": "user", "content": "Describe rain."}]


def test_synthesized_preferences_validate_as_preference_data(tiny_model_dir, tokenizer, tmp_path):
    from tunewise.align.data import load_align_data
    from tunewise.align.scoring import load_score_function
    from tunewise.data import validate_file
    from tunewise.spec import load_spec

    out = tmp_path / "prefs.jsonl"
    report = synthesize_preferences(FIXTURES / "prompts.txt", out, ScoreJudge.from_function(RULE),
                                    policy=str(tiny_model_dir), samples=3, temperature=1.0, max_new_tokens=10)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert report.prompts == 6 and report.pairs == len(rows) >= 4
    assert report.pairs + report.skipped_identical + report.skipped_ties == 6
    rule = load_score_function(RULE)
    assert all(rule(r["prompt"], r["chosen"]) > rule(r["prompt"], r["rejected"]) for r in rows)

    check = validate_file(out, tokenizer=tokenizer, max_length=512)
    assert check.ok and check.format == "preference" and check.rows_kept == len(rows)
    spec = load_spec(raw=align_spec(tiny_model_dir, out, "dpo") | {"data": {"train": str(out), "val_fraction": 0}})
    assert len(load_align_data(spec, tokenizer, "dpo", "paired").train) == len(rows)


def test_synthesis_refuses_one_sample_or_greedy(tiny_model_dir, tmp_path):
    judge = ScoreJudge.from_function(RULE)
    with pytest.raises(DataError, match="at least two"):
        synthesize_preferences(FIXTURES / "prompts.txt", tmp_path / "o.jsonl", judge, policy=str(tiny_model_dir), samples=1)
    with pytest.raises(DataError, match="above 0"):
        synthesize_preferences(FIXTURES / "prompts.txt", tmp_path / "o.jsonl", judge, policy=str(tiny_model_dir),
                               temperature=0)


def test_score_function_errors_are_clear(tmp_path):
    with pytest.raises(SpecError, match="module:function"):
        ScoreJudge.from_function("no_colon")
    with pytest.raises(SpecError, match="cannot import"):
        ScoreJudge.from_function("surely_not_a_module_xyz:f")
    with pytest.raises(SpecError, match="has no function"):
        ScoreJudge.from_function(f"{FIXTURES / 'rules.py'}:missing")
    judge = ScoreJudge.from_function(f"{FIXTURES / 'rules.py'}:not_a_number")
    with pytest.raises(SpecError, match="not a number"):
        judge.verdict(PROMPT, "a", "b")


def test_make_judge_needs_exactly_one_source():
    with pytest.raises(SpecError, match="exactly one judge, got none"):
        make_judge()
    with pytest.raises(SpecError, match="--judge, --judge-fn"):
        make_judge(model="x", function=RULE)
    with pytest.raises(SpecError, match="--judge-model"):
        make_judge(url="http://localhost:1")


def test_judge_template_must_show_prompt_and_both_answers(tmp_path):
    assert "{answer_b}" in load_template(FIXTURES / "judge_template.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("Which is better, {answer_a} or the other?")
    with pytest.raises(SpecError, match=r"lacks \{prompt\}, \{answer_b\}"):
        load_template(bad)


def test_model_judge_reads_its_verdict_from_the_letter_logits(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tunewise.models.load import load_tokenizer

    template = load_template(FIXTURES / "judge_template.txt")
    judge = ModelJudge(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval(),
                       load_tokenizer(tiny_model_dir), template=template)
    assert judge.verdict(PROMPT, "Rain is wet.", "Rain falls from clouds in drops.") in ("A", "B", "tie")


class _FakeEndpoint(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeEndpoint.seen.append((self.path, self.headers.get("Authorization"), body))
        reply = {"choices": [{"message": {"role": "assistant", "content": "**B** is better."}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_endpoint_judge_posts_an_openai_chat_request():
    server = HTTPServer(("127.0.0.1", 0), _FakeEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        judge = make_judge(url=url, endpoint_model="judge-1", key="secret",
                           template=str(FIXTURES / "judge_template.txt"))
        assert isinstance(judge, EndpointJudge)
        assert judge.verdict(PROMPT, "Wet.", "Rain falls.") == "B"
        path, auth, body = _FakeEndpoint.seen[-1]
        assert path == "/v1/chat/completions" and auth == "Bearer secret" and body["model"] == "judge-1"
        content = body["messages"][0]["content"]
        assert "Question: Describe rain." in content and "First answer: Wet." in content
    finally:
        server.shutdown()
    with pytest.raises(JudgeError, match="cannot be reached"):
        EndpointJudge(url, "judge-1", timeout_s=2).verdict(PROMPT, "a", "b")
