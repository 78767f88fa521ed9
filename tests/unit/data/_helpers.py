"""Small helpers shared by the data tests."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "data"
BAD = FIXTURES / "bad"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chat_row(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def labelled_text(tokenizer, example: dict) -> str:
    """Decode only the tokens that carry a label."""
    return tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != -100])


def labelled_token_runs(example: dict) -> list[list[int]]:
    """The runs of consecutive labelled tokens (each label equal to its token)."""
    runs, current = [], []
    for token, label in zip(example["input_ids"], example["labels"]):
        if label != -100:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def labelled_runs(tokenizer, example: dict) -> list[str]:
    """The text of each run of consecutive labelled tokens."""
    return [tokenizer.decode(run) for run in labelled_token_runs(example)]
