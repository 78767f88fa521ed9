"""The forgetting check flags a model over-trained on a narrow task, and not the untouched one."""

from __future__ import annotations

import pytest
import runfactory

from tunewise.eval.forgetting import answer_is_correct, compare_ability, general_paragraphs, general_questions
from tunewise.eval.gate import run_gate
from tunewise.eval.runner import evaluate_run
from tunewise.eval.spec import ForgettingSpec

NARROW = "Invoice 4417 is overdue. Pay invoice 4417 now. "


def _overtrain(tiny_model_dir, tokenizer, steps: int = 10):
    """Full-weight training on one repeated sentence at a high learning rate (1e-2, far above the
    1e-5 to 5e-5 used for full fine-tunes), so probability mass piles onto the narrow tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.train()
    batch = tokenizer([NARROW * 2], return_tensors="pt")["input_ids"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 5.0  # from ~10.8 nats (uniform over the vocabulary): it has learned the narrow string
    return model.eval()


@pytest.fixture
def forgetting_only() -> dict:
    return {"metrics": [], "samples": 0, "max_examples": 2, "spectrum": False,
            "forgetting": {"max_paragraphs": 6, "max_questions": 3},
            "gate": {"forgetting.ppl_increase": "<= 10%"}}


def test_overtrained_full_model_is_flagged_and_fails_the_gate(tiny_model_dir, tokenizer, forgetting_only, workspace):
    from tunewise.workspace import runs_dir

    model = _overtrain(tiny_model_dir, tokenizer)
    run_dir = runfactory.make_full_run(runs_dir(), "narrow", tiny_model_dir, model, eval_section=forgetting_only)
    report = evaluate_run(run_dir)
    f = report.forgetting
    assert f.ppl_increase > 0.5 and f.flagged
    assert any("general-text perplexity rose" in n for n in f.notes)
    verdict = run_gate(report, forgetting_only["gate"])
    assert not verdict.passed and verdict.criteria[0].value == pytest.approx(f.ppl_increase)


def test_untouched_model_shows_no_forgetting(tiny_model_dir, forgetting_only, workspace):
    import torch
    from transformers import AutoModelForCausalLM

    from tunewise.workspace import runs_dir

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    run_dir = runfactory.make_full_run(runs_dir(), "same", tiny_model_dir, model, eval_section=forgetting_only)
    report = evaluate_run(run_dir)
    assert abs(report.forgetting.ppl_increase) < 1e-4 and not report.forgetting.flagged
    assert run_gate(report, forgetting_only["gate"]).passed


def test_shipped_probes_and_user_replacements(tmp_path):
    assert len(general_paragraphs()) == 30 and len(general_questions()) == 30
    text = tmp_path / "mine.txt"
    text.write_text("First paragraph.\n\nSecond\nparagraph.\n")
    assert general_paragraphs(str(text)) == ["First paragraph.", "Second paragraph."]
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "Capital of Peru?", "answer": "Lima"}\n')
    assert general_questions(str(questions)) == [{"question": "Capital of Peru?", "answers": ["Lima"]}]
    assert answer_is_correct("It is Lima, of course.", ["Lima"]) and not answer_is_correct("Limassol", ["Lima"])


def test_question_accuracy_drop_is_flagged():
    spec = ForgettingSpec(max_paragraphs=2, max_questions=2)
    result = compare_ability({"text_ppl": 10.0, "qa_accuracy": 0.9}, {"text_ppl": 10.2, "qa_accuracy": 0.5}, spec)
    assert result.ppl_increase == pytest.approx(0.02) and result.qa_accuracy_drop == pytest.approx(0.4)
    assert result.flagged and "accuracy fell" in result.notes[0]


def test_lm_eval_tasks_are_skipped_with_a_note_when_lm_eval_is_absent():
    import importlib.util

    from tunewise.eval.forgetting import _run_lm_eval
    from tunewise.eval.report import ForgettingResult

    if importlib.util.find_spec("lm_eval") is not None:
        pytest.skip("lm_eval is installed here")
    result = ForgettingResult()
    _run_lm_eval(pair=None, spec=ForgettingSpec(lm_eval_tasks=["arc_easy"]), result=result)
    assert result.lm_eval == {} and "lm_eval is not installed" in result.notes[0]
