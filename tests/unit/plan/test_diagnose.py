"""The RAG-vs-fine-tune diagnostic: a scripted answerer for the rule, one real run on the bundled model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunewise.errors import DataError
from tunewise.plan.diagnose import Prompt, decide, diagnose_core, run_diagnosis
from tunewise.plan.qa import (
    chunk_text,
    exact_match,
    is_correct,
    load_passages,
    load_questions,
    normalize_answer,
    token_f1,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "plan"
DOCS = FIXTURES / "docs"


def reader(prompts: list[Prompt]) -> list[str]:
    """Knows nothing itself, reads perfectly: answers when a passage states the reference answer."""
    known = {q.question: q.answers[0] for name in ("qa_in_docs.jsonl", "qa_not_in_docs.jsonl")
             for q in load_questions(FIXTURES / name)}
    replies = []
    for p in prompts:
        answer = known[p.question]
        found = any(normalize_answer(answer) in normalize_answer(text) for text in p.passages)
        replies.append(f"It is {answer}." if found else "I do not know.")
    return replies


def test_answers_in_the_documents_means_rag():
    d = diagnose_core(load_questions(FIXTURES / "qa_in_docs.jsonl"), load_passages(DOCS), reader, top_k=2)
    assert d.verdict == "rag"
    assert d.scores["closed_book"].accuracy == 0.0
    assert d.scores["retrieved"].accuracy == 1.0
    assert d.scores["gold"].questions == 1 and d.scores["gold"].accuracy == 1.0
    assert d.retrieval_recall == 1.0
    assert any("retrieval failure" in r and "Recommend RAG, not a fine-tune" in r for r in d.reasons)


def test_answers_not_in_the_documents_means_fine_tune():
    d = diagnose_core(load_questions(FIXTURES / "qa_not_in_docs.jsonl"), load_passages(DOCS), reader)
    assert d.verdict == "fine-tune"
    assert d.scores["retrieved"].accuracy == 0.0
    assert any("persists with retrieval in place" in r for r in d.reasons)
    assert "gold" not in d.scores


def test_the_four_questions_shape_the_verdict():
    questions, passages = load_questions(FIXTURES / "qa_not_in_docs.jsonl"), load_passages(DOCS)
    daily = diagnose_core(questions, passages, reader, changes="daily", provenance=True)
    assert daily.verdict == "fine-tune+rag"
    assert any("daily" in r for r in daily.reasons) and any("provenance" in r for r in daily.reasons)
    behaviour = diagnose_core(load_questions(FIXTURES / "qa_in_docs.jsonl"), passages, reader, need="behaviour")
    assert behaviour.verdict == "fine-tune+rag"
    rare = diagnose_core(questions, passages, reader, rare_entities=True)
    assert any("Soudani" in r for r in rare.reasons)


def test_gold_passage_beats_retrieval_means_fix_retrieval_first():
    rows = [{"closed_book_correct": False, "retrieved_correct": False, "gold_correct": True} for _ in range(3)]
    from tunewise.plan.diagnose import ConditionScore

    scores = {"closed_book": ConditionScore(3, 0, 0, 0), "retrieved": ConditionScore(3, 0, 0, 0),
              "gold": ConditionScore(3, 1, 1, 1)}
    verdict, reasons = decide(rows, scores, need="knowledge", changes="static", rare_entities=False, provenance=False)
    assert verdict == "rag"
    assert any("fix retrieval first" in r for r in reasons)


def test_squad_scoring():
    assert normalize_answer("The  Tessaly River!") == "tessaly river"
    assert exact_match("the Tessaly.", ("Tessaly",))
    assert token_f1("Tessaly river valley", ("the Tessaly River",)) == pytest.approx(0.8)
    assert is_correct("It was invented by Odile Varnack in 1911.", ("Odile Varnack",))
    assert not is_correct("Varnackian glass", ("Varnack",))


def test_chunking_packs_paragraphs_into_passages():
    text = "\n\n".join(" ".join(f"w{i}_{j}" for j in range(60)) for i in range(5)) + "\n\n" + "x " * 450
    passages = chunk_text(text)
    assert all(len(p.split()) <= 200 for p in passages)
    assert sum(len(p.split()) for p in passages) == 5 * 60 + 450
    assert len(load_passages(FIXTURES / "docs.jsonl")) == 2


@pytest.mark.parametrize("name,where", [
    ("bad_missing_answer.jsonl", ":2: answer:"),
    ("bad_json.jsonl", ":2: not valid JSON"),
    ("bad_answer_type.jsonl", ":1: answer:"),
])
def test_bad_question_files_name_file_and_line(name, where):
    with pytest.raises(DataError) as err:
        load_questions(FIXTURES / name)
    assert f"{FIXTURES / name}{where}" in str(err.value)


def test_bad_documents_name_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"bad_docs.jsonl:2: text:"):
        load_passages(FIXTURES / "bad_docs.jsonl")
    with pytest.raises(DataError, match="no .txt or .md files"):
        load_passages(tmp_path)


def test_cli_bad_file_is_a_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "tunewise", "diagnose", "--questions",
                           str(FIXTURES / "bad_json.jsonl"), "--docs", str(DOCS)], check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and "bad_json.jsonl:2: not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_real_run_on_the_bundled_model_says_rag(capsys):
    """Made-up facts: the bundled 135M model cannot know them, but reads them from the passages."""
    d = run_diagnosis(FIXTURES / "qa_in_docs.jsonl", DOCS, top_k=1, max_new_tokens=16)
    assert d.scores["closed_book"].accuracy <= 0.25
    assert d.scores["retrieved"].accuracy >= 0.5
    assert d.verdict == "rag", json.dumps(d.to_json(), indent=1)
