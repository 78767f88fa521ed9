"""Synthetic datasets for the benchmarks, deterministic for a seed.

Real chat data is skewed: most conversations are short and a few are long. `write_skewed_chat`
draws each conversation's length from a log-normal distribution, so a plain padded batch of 8
wastes a realistic share of its tokens on padding (about 40%).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

# Common English words that are one token each (with their leading space) in the SmolLM2 tokenizer,
# so a conversation of n words is about n tokens plus the chat template's ~32.
WORDS = (
    "the of and to in is for on that by this with you it not or be are from at as your all have new more an was "
    "we will can us about if my has but our one other do no time they he up may what which their out use any "
    "there see only so his when here who web also now help get view first am been would how were me some these "
    "like than find back top people had list name just over year day into two health world next used work last "
    "most data make them should product system post her city add policy number such please available copyright "
    "support message after best software then good well where info public high through each she review very "
    "order book company read group need many user said does set under general research university mail full "
    "map reviews program life know games way days management part could great united hotel real item international "
    "center must store travel comments made development report off member details line terms before did send "
    "right type because local those using results office education national car design take posted internet "
    "address community within states area want phone shipping reserved subject between forum family long based "
    "code show even black check special prices website index being women much sign file link open today technology"
).split()

TEMPLATE_TOKENS = 40  # the SmolLM2 chat template's system prompt and turn markers, rounded up


def _sentence(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, n_words)))


def skewed_lengths(rows: int, seed: int, *, median: float = 100.0, sigma: float = 0.6, max_tokens: int = 512) -> list[int]:
    """Content lengths in words: log-normal (median `median`), capped so every row fits `max_tokens`."""
    rng = random.Random(seed)
    cap = max_tokens - TEMPLATE_TOKENS - 8
    return [min(cap, max(4, int(rng.lognormvariate(math.log(median), sigma)))) for _ in range(rows)]


def write_skewed_chat(path: Path, rows: int, *, seed: int = 0, max_tokens: int = 512) -> Path:
    """A chat JSONL of `rows` single-turn conversations with log-normal lengths (all within max_tokens)."""
    rng = random.Random(seed + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i, length in enumerate(skewed_lengths(rows, seed, max_tokens=max_tokens)):
            user_words = max(2, int(length * rng.uniform(0.2, 0.6)))
            row = {"messages": [
                {"role": "user", "content": f"Question {i}: " + _sentence(rng, user_words - 2)},
                {"role": "assistant", "content": _sentence(rng, length - user_words)},
            ]}
            fh.write(json.dumps(row) + "\n")
    return path


def write_pipeline_rows(path: Path, rows: int, *, seed: int = 0) -> dict[str, int]:
    """A chat JSONL for the data-pipeline benchmark: 2% exact copies, 1% near copies, 0.5% invalid rows.

    Returns how many of each were planted.
    """
    rng = random.Random(seed)
    planted = {"exact": 0, "near": 0, "invalid": 0}
    recent: list[dict] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            draw = rng.random()
            if draw < 0.02 and recent:
                row = rng.choice(recent)
                planted["exact"] += 1
            elif draw < 0.03 and recent:
                base = rng.choice(recent)
                answer = base["messages"][1]["content"]
                row = {"messages": [base["messages"][0], {"role": "assistant", "content": answer + " indeed"}]}
                planted["near"] += 1
            elif draw < 0.035:
                row = {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": 7}]}
                planted["invalid"] += 1
            else:
                row = {"messages": [
                    {"role": "user", "content": f"Request {i}: " + _sentence(rng, rng.randint(8, 40))},
                    {"role": "assistant", "content": _sentence(rng, rng.randint(10, 60))},
                ]}
                recent = (recent + [row])[-200:]
            fh.write(json.dumps(row) + "\n")
    return planted
