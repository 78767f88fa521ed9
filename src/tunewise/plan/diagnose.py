"""RAG or fine-tune? Ask the base model closed-book, then with retrieved passages, then (where the
question file has one) with the gold passage, and apply the decision rule:

    if the model answers correctly when given the documents but not without them, the failure is a
    retrieval failure: recommend RAG, not a fine-tune.

The user's answers to the four diagnostic questions (knowledge or behaviour, how often the
knowledge changes, how rare the entities are, whether provenance is needed) shape the verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunewise.plan.qa import (
    Passage,
    Question,
    exact_match,
    is_correct,
    load_passages,
    load_questions,
    token_f1,
)

Need = Literal["knowledge", "behaviour"]
Changes = Literal["static", "monthly", "weekly", "daily"]
CONDITIONS = ("closed_book", "retrieved", "gold")
FIXED_SHARE = 0.5  # docs fix at least half the closed-book misses: a retrieval failure
ALREADY_RIGHT = 0.9  # closed-book accuracy at which no change is needed for knowledge


@dataclass(frozen=True)
class Prompt:
    question: str
    passages: tuple[str, ...]  # empty: closed-book


AnswerFn = Callable[[list[Prompt]], list[str]]


@dataclass
class ConditionScore:
    questions: int
    accuracy: float  # exact match or reference contained in the reply
    exact_match: float
    f1: float


@dataclass
class Diagnosis:
    verdict: str  # rag | fine-tune | fine-tune+rag | none
    reasons: list[str]
    scores: dict[str, ConditionScore]
    retrieval_recall: float  # share of questions whose retrieved passages contain a reference answer
    per_question: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "scores": {k: vars(v) for k, v in self.scores.items()},
            "retrieval_recall": round(self.retrieval_recall, 4),
            "questions": self.per_question,
        }


# --- retrieval -----------------------------------------------------------------------------------


class Bm25Index:
    """BM25 over passages (bm25s), English stop words removed."""

    def __init__(self, passages: list[Passage]):
        import bm25s

        self._bm25s = bm25s
        self.passages = passages
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize([p.text for p in passages], stopwords="en", show_progress=False),
                             show_progress=False)

    def top(self, query: str, k: int) -> list[Passage]:
        k = min(k, len(self.passages))
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        ids, _scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [self.passages[int(i)] for i in ids[0]]


# --- the model as an answer function -------------------------------------------------------------

SYSTEM = "Answer the question in a few words. When context is given, answer from the context."


def model_answer_fn(model_name: str = "smollm2-135m-instruct", *, max_new_tokens: int = 24) -> AnswerFn:
    """Greedy answers from a base model through its chat template."""
    from tunewise.models import resolve_base_model, resolve_device_policy
    from tunewise.models.generate import generate_replies
    from tunewise.models.load import load_causal_lm, load_tokenizer

    model_dir = resolve_base_model(model_name)
    tokenizer = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir, resolve_device_policy()).eval()

    def answer(prompts: list[Prompt]) -> list[str]:
        conversations = []
        for p in prompts:
            context = "\n\n".join(p.passages)
            user = f"Context:\n{context}\n\nQuestion: {p.question}" if context else f"Question: {p.question}"
            conversations.append([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}])
        return generate_replies(model, tokenizer, conversations, max_new_tokens=max_new_tokens)

    return answer


# --- the diagnostic ------------------------------------------------------------------------------


def _score(replies: list[str], questions: list[Question]) -> ConditionScore:
    n = max(len(questions), 1)
    return ConditionScore(
        questions=len(questions),
        accuracy=sum(is_correct(r, q.answers) for r, q in zip(replies, questions)) / n,
        exact_match=sum(exact_match(r, q.answers) for r, q in zip(replies, questions)) / n,
        f1=sum(token_f1(r, q.answers) for r, q in zip(replies, questions)) / n,
    )


def diagnose_core(questions: list[Question], passages: list[Passage], answer_fn: AnswerFn, *, top_k: int = 3,
                  need: Need = "knowledge", changes: Changes = "static", rare_entities: bool = False,
                  provenance: bool = False) -> Diagnosis:
    """The diagnostic with the answering model injected: `answer_fn(prompts) -> replies`."""
    index = Bm25Index(passages)
    retrieved = [tuple(p.text for p in index.top(q.question, top_k)) for q in questions]
    with_gold = [q for q in questions if q.gold_passage]
    replies = {
        "closed_book": answer_fn([Prompt(q.question, ()) for q in questions]),
        "retrieved": answer_fn([Prompt(q.question, r) for q, r in zip(questions, retrieved)]),
    }
    scores = {name: _score(replies[name], questions) for name in replies}
    gold_right: dict[int, bool] = {}
    if with_gold:
        gold_replies = answer_fn([Prompt(q.question, (q.gold_passage,)) for q in with_gold])
        scores["gold"] = _score(gold_replies, with_gold)
        gold_right = {q.line: is_correct(r, q.answers) for q, r in zip(with_gold, gold_replies)}
    rows = []
    for i, q in enumerate(questions):
        rows.append({
            "line": q.line, "question": q.question, "answers": list(q.answers),
            "closed_book": replies["closed_book"][i], "retrieved": replies["retrieved"][i],
            "closed_book_correct": is_correct(replies["closed_book"][i], q.answers),
            "retrieved_correct": is_correct(replies["retrieved"][i], q.answers),
            "gold_correct": gold_right.get(q.line),
            "answer_in_retrieved": any(is_correct(text, q.answers) for text in retrieved[i]),
        })
    recall = sum(r["answer_in_retrieved"] for r in rows) / max(len(rows), 1)
    verdict, reasons = decide(rows, scores, need=need, changes=changes, rare_entities=rare_entities,
                              provenance=provenance, top_k=top_k)
    return Diagnosis(verdict, reasons, scores, recall, rows)


def decide(rows: list[dict[str, Any]], scores: dict[str, ConditionScore], *, need: Need, changes: Changes,
           rare_entities: bool, provenance: bool, top_k: int = 3) -> tuple[str, list[str]]:
    """The verdict and every reason for it, measured evidence first, then the user's answers."""
    missed = [r for r in rows if not r["closed_book_correct"]]
    by_retrieval = [r for r in missed if r["retrieved_correct"]]
    by_gold = [r for r in missed if r["gold_correct"]]
    fixed = [r for r in missed if r["retrieved_correct"] or r["gold_correct"]]
    pct = lambda name: f"{scores[name].accuracy:.0%}" if name in scores else "n/a"
    reasons = [f"accuracy closed-book {pct('closed_book')}, with the top {top_k} BM25 passages "
               f"{pct('retrieved')}, with the gold passage {pct('gold')}"]
    frequent = changes in ("weekly", "daily")
    if not missed or scores["closed_book"].accuracy >= ALREADY_RIGHT:
        reasons.append("the base model already answers these questions closed-book: no knowledge gap to fix")
        verdict = "fine-tune" if need == "behaviour" else ("rag" if frequent else "none")
    elif len(fixed) / len(missed) >= FIXED_SHARE:
        reasons.append(f"{len(fixed)} of the {len(missed)} questions missed closed-book are answered when the "
                       "documents are in the context: a retrieval failure, not a weight problem. Recommend RAG, "
                       "not a fine-tune (fine-tuning does not reliably fix factual gaps)")
        if len(by_gold) > len(by_retrieval):
            reasons.append(f"with the gold passage {len(by_gold)} are fixed, with BM25's passages {len(by_retrieval)}: "
                           "fix retrieval first (chunking, more passages, a better retriever)")
        verdict = "fine-tune+rag" if need == "behaviour" else "rag"
    else:
        reasons.append(f"only {len(fixed)} of the {len(missed)} questions missed closed-book are answered with the "
                       "documents in context: the failure persists with retrieval in place, so it is not only "
                       "a retrieval problem. Fine-tune")
        verdict = "fine-tune"
        if need == "knowledge" and (frequent or rare_entities or provenance):
            verdict = "fine-tune+rag"
    reasons += _flag_reasons(need, changes, rare_entities, provenance, verdict)
    return verdict, reasons


def _flag_reasons(need: Need, changes: Changes, rare: bool, provenance: bool, verdict: str) -> list[str]:
    out = []
    if need == "behaviour":
        out.append("the need is behaviour or style: that lives in the weights, so fine-tune for it (a LoRA "
                   "adapter usually suffices); use RAG for the knowledge")
    out.append({
        "static": "the knowledge is static: fine-tuned weights will not go stale",
        "monthly": "the knowledge changes monthly: a fine-tune would need retraining every month; a RAG index "
                   "is refreshed instead",
        "weekly": "the knowledge changes weekly: re-fine-tuning on every update is unsustainable; RAG with a "
                  "refreshed index keeps answers current",
        "daily": "the knowledge changes daily: re-fine-tuning on every update is unsustainable; RAG with a "
                 "refreshed index keeps answers current",
    }[changes])
    if rare:
        out.append("rare entities: RAG outperforms fine-tuning by a large margin for the least popular entities "
                   "(Soudani et al., 2024)")
    if provenance:
        out.append("provenance needed: RAG grounds answers in documents that can be cited and audited; "
                   "fine-tuned knowledge has no source to show")
    if verdict == "fine-tune+rag":
        out.append("the two add up: fine-tuning and RAG on top improved domain QA cumulatively (Balaguer et al., 2024)")
    return out


def run_diagnosis(questions: str | Path, docs: str | Path, *, model: str = "smollm2-135m-instruct", top_k: int = 3,
                  need: Need = "knowledge", changes: Changes = "static", rare_entities: bool = False,
                  provenance: bool = False, answer_fn: AnswerFn | None = None, max_new_tokens: int = 24) -> Diagnosis:
    """Load the question file and documents, answer with `model` (or `answer_fn`), and decide.

    Args:
        questions: JSONL with question, answer (string or list) and optional context/gold_passage.
        docs: directory of .txt/.md files, or JSONL with a `text` field.
        need, changes, rare_entities, provenance: the four diagnostic questions.
    """
    qs = load_questions(questions)
    passages = load_passages(docs)
    fn = answer_fn or model_answer_fn(model, max_new_tokens=max_new_tokens)
    return diagnose_core(qs, passages, fn, top_k=top_k, need=need, changes=changes,
                         rare_entities=rare_entities, provenance=provenance)
