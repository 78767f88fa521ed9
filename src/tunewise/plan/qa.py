"""Question sets, document passages, and SQuAD-style answer scoring for the RAG diagnostic."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tunewise.errors import DataError

PASSAGE_MIN_WORDS = 100
PASSAGE_MAX_WORDS = 200
DOC_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Question:
    question: str
    answers: tuple[str, ...]
    gold_passage: str | None
    line: int


@dataclass(frozen=True)
class Passage:
    text: str
    source: str  # file (and line for JSONL) it came from


# --- questions -----------------------------------------------------------------------------------


def _json_lines(path: Path):
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, encoding="utf-8", errors="strict") as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
                yield number, row
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text (byte {err.start})") from None


def load_questions(path: str | Path) -> list[Question]:
    """JSONL rows with `question`, `answer` (a string or a list of strings) and, optionally, the passage
    that answers it as `context` or `gold_passage`. Errors name file:line and the field."""
    file = Path(path)
    out = []
    for number, row in _json_lines(file):
        where = f"{file}:{number}"
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: question: missing or not a non-empty string")
        answer = row.get("answer", row.get("answers"))
        answers = [answer] if isinstance(answer, str) else answer
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise DataError(f"{where}: answer: must be a non-empty string or a list of non-empty strings")
        gold = row.get("context", row.get("gold_passage"))
        if gold is not None and not isinstance(gold, str):
            raise DataError(f"{where}: context: must be a string")
        out.append(Question(question.strip(), tuple(a.strip() for a in answers), gold or None, number))
    if not out:
        raise DataError(f"{file}: no questions")
    return out


# --- documents -----------------------------------------------------------------------------------


def chunk_text(text: str) -> list[str]:
    """Passages of about 100-200 words: paragraphs packed together, long paragraphs cut in windows."""
    passages: list[str] = []
    current: list[str] = []
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text)):
        words = paragraph.split()
        while len(words) > PASSAGE_MAX_WORDS:
            passages.append(" ".join(words[:150]))
            words = words[150:]
        if not words:
            continue
        if current and len(current) + len(words) > PASSAGE_MAX_WORDS:
            passages.append(" ".join(current))
            current = []
        current += words
        if len(current) >= PASSAGE_MIN_WORDS:
            passages.append(" ".join(current))
            current = []
    if current:
        passages.append(" ".join(current))
    return passages


def load_passages(path: str | Path) -> list[Passage]:
    """A directory of .txt/.md files, or a JSONL file with a `text` field per row, cut into passages."""
    source = Path(path)
    passages: list[Passage] = []
    if source.is_dir():
        files = sorted(f for f in source.rglob("*") if f.suffix.lower() in DOC_SUFFIXES and f.is_file())
        if not files:
            raise DataError(f"{source}: no .txt or .md files")
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{file}: not UTF-8 text (byte {err.start})") from None
            passages += [Passage(p, str(file)) for p in chunk_text(text)]
    elif source.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for number, row in _json_lines(source):
            text = row.get("text")
            if not isinstance(text, str):
                raise DataError(f"{source}:{number}: text: missing or not a string")
            passages += [Passage(p, f"{source}:{number}") for p in chunk_text(text)]
    elif source.exists():
        raise DataError(f"{source}: documents must be a directory of .txt/.md files or a JSONL file with `text`")
    else:
        raise DataError(f"{source}: not found")
    if not passages:
        raise DataError(f"{source}: the documents hold no text")
    return passages


# --- scoring (SQuAD's normalisation) -------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (as the SQuAD evaluation script)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, answers: tuple[str, ...]) -> bool:
    pred = normalize_answer(prediction)
    return any(pred == normalize_answer(a) for a in answers)


def token_f1(prediction: str, answers: tuple[str, ...]) -> float:
    def f1(pred: list[str], gold: list[str]) -> float:
        common = sum((Counter(pred) & Counter(gold)).values())
        if not pred or not gold or common == 0:
            return float(pred == gold)
        precision, recall = common / len(pred), common / len(gold)
        return 2 * precision * recall / (precision + recall)

    pred = normalize_answer(prediction).split()
    return max(f1(pred, normalize_answer(a).split()) for a in answers)


def answer_contained(prediction: str, answers: tuple[str, ...]) -> bool:
    """The reference appears in the reply (PopQA's accuracy, used by Soudani et al. 2024): generative
    models answer in sentences, which exact match would score as wrong."""
    pred = f" {normalize_answer(prediction)} "
    return any(f" {normalize_answer(a)} " in pred for a in answers if normalize_answer(a))


def is_correct(prediction: str, answers: tuple[str, ...]) -> bool:
    return exact_match(prediction, answers) or answer_contained(prediction, answers)
