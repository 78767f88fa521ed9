"""Judge win-rate: does a judge prefer the fine-tuned answer over the base model's?

Each pair is shown in a random order (seeded), so a judge that favours the first position cannot
inflate the result; the share of verdicts that went to the first position is reported to expose
such a bias. The judge is a model tunewise loads (next-token preference between "A" and "B") or an
OpenAI-compatible endpoint reached with plain HTTP.
"""

from __future__ import annotations

import json
import math
import os
import random
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tunewise.eval.errors import EvalError
from tunewise.eval.metrics import normalize_answer
from tunewise.eval.report import JudgeResult
from tunewise.eval.spec import JudgeSpec
from tunewise.models.device import DevicePolicy

DEFAULT_CRITERIA = "Prefer the answer that follows the request, is correct, and is helpful and concise."
Z_95 = 1.959964


@dataclass(frozen=True)
class JudgeItem:
    conversation: list[dict[str, str]]
    tuned: str
    base: str


class Judge(Protocol):
    name: str

    def verdict(self, prompt: list[dict[str, str]]) -> str:  # "A", "B" or "tie"
        ...


def judge_prompt(conversation: list[dict[str, str]], first: str, second: str, criteria: str) -> list[dict[str, str]]:
    request = "\n".join(f"{m['role']}: {m['content']}" for m in conversation)
    return [
        {"role": "system", "content": "You are a careful, impartial judge of answers written by AI assistants."},
        {"role": "user", "content": (
            f"Request:\n{request}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}\n\n{criteria}\n"
            "Reply with one letter, A or B, or the word tie if they are equally good."
        )},
    ]


def parse_verdict(reply: str) -> str | None:
    words = reply.strip().strip("*\"'.:").upper().split()
    if not words:
        return None
    head = words[0].strip("*\"'.:,()")
    if head in ("A", "B"):
        return head
    if head == "TIE":
        return "tie"
    return None


class LocalJudge:
    """A causal LM tunewise can load; its verdict is whichever of 'A' / 'B' it finds more likely next."""

    def __init__(self, model_name: str, policy: DevicePolicy):
        from tunewise.models.load import load_causal_lm, load_tokenizer
        from tunewise.models.resolve import resolve_base_model

        folder = resolve_base_model(model_name)
        self.name = model_name
        self.model = load_causal_lm(folder, policy).eval()
        self.tokenizer = load_tokenizer(folder)
        self.choice_ids = {
            label: sorted({self.tokenizer.encode(v, add_special_tokens=False)[0] for v in (label, f" {label}")})
            for label in ("A", "B")
        }

    def verdict(self, prompt: list[dict[str, str]]) -> str:
        import torch

        text = self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        with torch.no_grad():
            logits = self.model(**enc).logits[0, -1].float()
        score = {label: float(logits[ids].max()) for label, ids in self.choice_ids.items()}
        if abs(score["A"] - score["B"]) < 1e-6:
            return "tie"
        return "A" if score["A"] > score["B"] else "B"


class EndpointJudge:
    """An OpenAI-compatible chat endpoint: POST {base_url}/chat/completions, temperature 0."""

    def __init__(self, spec: JudgeSpec):
        base = (spec.base_url or "").rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model = spec.model
        self.key = os.environ.get(spec.api_key_env, "")
        self.timeout_s = spec.timeout_s
        self.name = f"{spec.model} @ {base}"

    def verdict(self, prompt: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": prompt, "temperature": 0, "max_tokens": 4}).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            raise EvalError(f"eval.judge: {self.url} answered HTTP {err.code}",
                            hint="check eval.judge.base_url, eval.judge.model and the key variable") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise EvalError(f"eval.judge: cannot reach {self.url} ({err})") from None
        try:
            reply = payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise EvalError(f"eval.judge: {self.url} did not return an OpenAI-style chat completion") from None
        return parse_verdict(reply) or "invalid"


def make_judge(spec: JudgeSpec, policy: DevicePolicy) -> Judge:
    return EndpointJudge(spec) if spec.base_url else LocalJudge(spec.model, policy)


def wilson_interval(score: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion `score` observed over `n` trials."""
    if n == 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    center = (score + z * z / (2 * n)) / denom
    half = z * math.sqrt(score * (1 - score) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def judge_win_rate(items: Sequence[JudgeItem], judge: Judge, *, seed: int = 0, criteria: str | None = None) -> JudgeResult:
    """Win-rate of the tuned answers over the base answers (ties count half), with a 95% interval."""
    rng = random.Random(seed)
    wins = losses = ties = invalid = first_picks = decided = 0
    for item in items:
        if normalize_answer(item.tuned) == normalize_answer(item.base):
            ties += 1  # identical answers need no judge
            continue
        tuned_first = rng.random() < 0.5
        first, second = (item.tuned, item.base) if tuned_first else (item.base, item.tuned)
        verdict = judge.verdict(judge_prompt(item.conversation, first, second, criteria or DEFAULT_CRITERIA))
        if verdict == "tie":
            ties += 1
        elif verdict in ("A", "B"):
            decided += 1
            first_picks += verdict == "A"
            if (verdict == "A") == tuned_first:
                wins += 1
            else:
                losses += 1
        else:
            invalid += 1
    n = wins + losses + ties
    rate = (wins + 0.5 * ties) / n if n else 0.0
    low, high = wilson_interval(rate, n)
    return JudgeResult(judge=judge.name, n=n, wins=wins, losses=losses, ties=ties, invalid=invalid, win_rate=rate,
                       ci_low=low, ci_high=high, first_position_share=first_picks / decided if decided else 0.0)


def items_from(conversations: Sequence[list[dict[str, str]]], tuned: Sequence[str], base: Sequence[str]) -> list[JudgeItem]:
    return [JudgeItem(c, t, b) for c, t, b in zip(conversations, tuned, base)]
