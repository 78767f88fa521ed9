"""AI feedback (RLAIF): sample several answers per prompt from a policy, let a judge rank them, and
write the best and the worst as a preference pair.

The output is an ordinary preference file ({"prompt", "chosen", "rejected"} per line) that the
data pipeline validates and `dpo`, `orpo`, `kto` and `reward` train on.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise.align.judges import compare
from tunewise.errors import DataError

console = Console(stderr=True)
Prompt = str | list[dict[str, str]]


def read_prompts(path: str | Path) -> list[Prompt]:
    """Prompts from a .txt file (one per line) or a data file whose rows hold `prompt` (text or messages)
    or `messages` (the turns up to the last user turn are the prompt). Errors name file:line."""
    from tunewise.data import load_rows

    file = Path(path)
    if file.suffix.lower() == ".txt":
        if not file.is_file():
            raise DataError(f"{file}: file not found")
        prompts: list[Prompt] = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        prompts, problems = [], []
        for line, row in load_rows(file):
            prompt = _row_prompt(row) if isinstance(row, dict) else None
            if prompt is None:
                where = f"{file}:{line}" if line is not None else str(file)
                problems.append(str(row) if not isinstance(row, dict) else
                                f"{where}: no prompt (expected `prompt`: text or messages ending with a user turn, "
                                "or `messages` with a user turn)")
            else:
                prompts.append(prompt)
        if problems:
            shown = "\n".join(f"  {p}" for p in problems[:10])
            raise DataError(f"{file}: {len(problems)} row(s) without a usable prompt:\n{shown}")
    if not prompts:
        raise DataError(f"{file}: no prompts found")
    return prompts


def _row_prompt(row: dict[str, Any]) -> Prompt | None:
    value = row.get("prompt", row.get("messages"))
    if isinstance(value, str):
        return value if value.strip() and "prompt" in row else None
    if not isinstance(value, list) or not all(_is_message(m) for m in value):
        return None
    messages = [{"role": m["role"], "content": m["content"]} for m in value]
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None or ("prompt" in row and last_user != len(messages) - 1):
        return None
    return messages[: last_user + 1]


def _is_message(item: Any) -> bool:
    return isinstance(item, dict) and item.get("role") in ("system", "user", "assistant") \
        and isinstance(item.get("content"), str)


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


@dataclass
class SynthesisReport:
    prompts: int
    pairs: int
    skipped_identical: int  # fewer than two different answers were sampled
    skipped_ties: int  # the judge could not separate best from worst
    judge: str
    policy: str
    out: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank_answers(judge: Any, prompt: list[dict[str, str]], answers: list[str], rng: random.Random) -> tuple[int, int] | None:
    """(best, worst) indices, or None on a tie. Score judges rank by score; pairwise judges by
    round-robin wins (each pair once, in a random order)."""
    if hasattr(judge, "score_many"):
        scores = judge.score_many([prompt] * len(answers), answers)
    else:
        scores = [0.0] * len(answers)
        for i in range(len(answers)):
            for j in range(i + 1, len(answers)):
                won, _ = compare(judge, prompt, answers[i], answers[j], rng)
                won = 0.5 if won is None else won  # a reply that names neither answer separates nothing
                scores[i] += won
                scores[j] += 1 - won
    best = max(range(len(answers)), key=lambda i: scores[i])
    worst = min(range(len(answers)), key=lambda i: scores[i])
    return None if scores[best] == scores[worst] else (best, worst)


def synthesize_preferences(prompts_path: str | Path, out: str | Path, judge: Any, *, policy: str = "smollm2-135m-instruct",
                           samples: int = 2, temperature: float = 0.9, max_new_tokens: int = 128, seed: int = 0,
                           batch_size: int = 8) -> SynthesisReport:
    """Write a preference dataset judged by `judge` (see tunewise.align.judges.make_judge).

    Args:
        prompts_path: prompts file (see read_prompts).
        out: the .jsonl file to write (replaced atomically).
        policy: model answering: bundled name, run, artifact or model directory.
        samples: answers sampled per prompt (2 or more); the judge's best and worst form the pair.
        temperature: sampling temperature (> 0; diversity is the point).
    """
    import torch

    from tunewise.models.generate import generate_replies
    from tunewise.models.merge import load_any

    if samples < 2:
        raise DataError(f"--samples {samples}: a preference needs at least two answers per prompt")
    if temperature <= 0:
        raise DataError("--temperature must be above 0: identical greedy answers cannot be compared")
    prompts = read_prompts(prompts_path)
    model, tokenizer = load_any(policy)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    rows, identical, ties = [], 0, 0
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        conversations = [as_messages(p) for p in chunk for _ in range(samples)]
        replies = generate_replies(model, tokenizer, conversations, max_new_tokens=max_new_tokens,
                                   temperature=temperature, batch_size=batch_size * samples)
        for k, prompt in enumerate(chunk):
            answers = list(dict.fromkeys(r for r in replies[k * samples : (k + 1) * samples] if r.strip()))
            if len(answers) < 2:
                identical += 1
                continue
            ranked = rank_answers(judge, as_messages(prompt), answers, rng)
            if ranked is None:
                ties += 1
                continue
            rows.append({"prompt": prompt, "chosen": answers[ranked[0]], "rejected": answers[ranked[1]]})
        console.print(f"synthesize: {min(start + batch_size, len(prompts))}/{len(prompts)} prompts, {len(rows)} pairs")
    _write_jsonl(Path(out), rows)
    return SynthesisReport(len(prompts), len(rows), identical, ties, judge.name, policy, str(out))


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
