"""Judges that say which of two answers to a request is better, and the win-rate they give.

Pairwise judges read both answers in one prompt: a causal LM tunewise loads (`ModelJudge`: its
verdict is whichever of the tokens A / B it finds more likely next) or an OpenAI-compatible
endpoint reached with plain HTTP (`EndpointJudge`). They favour a position more often than not,
so `compare` shows each pair in a random (seeded) order and maps the verdict back; the share of
verdicts that went to the first-shown answer is reported to expose such a bias. A win-rate counts
ties as half and comes with its 95% Wilson interval.

The evaluation stage builds its judge from `eval.judge` (`make_judge`); tunewise.align.judges adds
judges that score answers one at a time and builds a judge from command-line options.
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
from typing import Any, Literal, Protocol

from tunewise.eval.errors import EvalError
from tunewise.eval.metrics import normalize_answer
from tunewise.eval.report import JudgeResult
from tunewise.eval.spec import JudgeSpec
from tunewise.models.device import DevicePolicy

Verdict = Literal["A", "B", "tie", "invalid"]  # invalid: the reply named neither answer
Messages = list[dict[str, str]]
Z_95 = 1.959964  # two-sided 95% normal quantile

DEFAULT_CRITERIA = "Which answer follows the request better: correct, helpful, and no longer than needed?"
PLACEHOLDERS = ("{prompt}", "{answer_a}", "{answer_b}")


def judge_template(criteria: str | None = None) -> str:
    """The judge prompt with `criteria` (default: DEFAULT_CRITERIA) as its question."""
    return ("You compare two answers written by AI assistants to the same request.\n\n"
            "Request:\n{prompt}\n\nAnswer A:\n{answer_a}\n\nAnswer B:\n{answer_b}\n\n"
            f"{criteria or DEFAULT_CRITERIA}\nReply with the single letter A or B.")


DEFAULT_TEMPLATE = judge_template()


class JudgeError(EvalError):
    """A judge could not give a verdict (endpoint unreachable, bad reply)."""


class Judge(Protocol):
    name: str

    def verdict(self, prompt: Messages, answer_a: str, answer_b: str) -> Verdict: ...


def render_template(template: str, prompt: Messages, answer_a: str, answer_b: str) -> str:
    """Fill the three placeholders (plain replacement: answers may contain braces)."""
    turns = [m for m in prompt if m["role"] != "system"]
    request = turns[0]["content"] if len(turns) == 1 else "\n".join(f"{m['role']}: {m['content']}" for m in turns)
    return template.replace("{prompt}", request).replace("{answer_a}", answer_a).replace("{answer_b}", answer_b)


def parse_verdict(reply: str) -> Literal["A", "B", "tie"] | None:
    """The first standalone A, B or tie in a reply ("A", "Answer B.", "**B**"); None if there is none."""
    for word in reply.replace("*", " ").replace(":", " ").split():
        token = word.strip(".,;!()[]\"'").upper()
        if token in ("A", "B"):
            return token
        if token == "TIE":
            return "tie"
    return None


class ModelJudge:
    """A causal LM tunewise loads; its verdict is whichever of the tokens A / B it finds more likely next."""

    order_sensitive = True

    def __init__(self, model: Any, tokenizer: Any, *, template: str = DEFAULT_TEMPLATE, name: str = "model"):
        self.model, self.tokenizer, self.template, self.name = model, tokenizer, template, name

        def first_id(text: str) -> int:
            return tokenizer.encode(text, add_special_tokens=False)[0]

        # "A" and " A" are different tokens; either may follow the chat template's assistant header.
        self.letter_ids = {letter: sorted({first_id(letter), first_id(" " + letter)}) for letter in ("A", "B")}

    @classmethod
    def load(cls, name: str, template: str = DEFAULT_TEMPLATE, policy: DevicePolicy | None = None) -> ModelJudge:
        """A judge from a run, an artifact, a model directory or a bundled model name."""
        from tunewise.models.merge import load_any

        model, tokenizer = load_any(name, policy)
        return cls(model, tokenizer, template=template, name=f"model {name}")

    def verdict(self, prompt: Messages, answer_a: str, answer_b: str) -> Verdict:
        import torch

        question = [{"role": "user", "content": render_template(self.template, prompt, answer_a, answer_b)}]
        text = self.tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(next(self.model.parameters()).device)
        with torch.no_grad():
            logits = self.model(**enc).logits[0, -1].float()
        a, b = (float(logits[ids].max()) for ids in (self.letter_ids["A"], self.letter_ids["B"]))
        return "tie" if a == b else ("A" if a > b else "B")


class EndpointJudge:
    """An OpenAI-compatible chat endpoint: POST {base}/v1/chat/completions at temperature 0.

    Args:
        url: the endpoint's base URL, with or without the trailing /v1.
        model: the model name the endpoint serves; key: its API key, if it needs one.
        settings_hint: where the caller sets url, model and key, for error messages.
    """

    order_sensitive = True

    def __init__(self, url: str, model: str, *, key: str | None = None, template: str = DEFAULT_TEMPLATE,
                 timeout_s: float = 60.0, settings_hint: str = "check the judge's URL, model name and key"):
        base = url.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model, self.key, self.template, self.timeout_s = model, key, template, timeout_s
        self.settings_hint = settings_hint
        self.name = f"{model} @ {base}"

    def verdict(self, prompt: Messages, answer_a: str, answer_b: str) -> Verdict:
        content = render_template(self.template, prompt, answer_a, answer_b)
        body = {"model": self.model, "messages": [{"role": "user", "content": content}], "temperature": 0,
                "max_tokens": 8}
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8"))
            reply = payload["choices"][0]["message"]["content"] or ""
        except urllib.error.HTTPError as err:
            raise JudgeError(f"judge endpoint {self.url} answered HTTP {err.code}", hint=self.settings_hint) from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise JudgeError(f"judge endpoint {self.url} cannot be reached ({err})", hint=self.settings_hint) from None
        except (KeyError, IndexError, TypeError, ValueError):
            raise JudgeError(f"judge endpoint {self.url} did not return an OpenAI-style chat completion") from None
        return parse_verdict(reply) or "invalid"


def compare(judge: Any, prompt: Messages, x: str, y: str, rng: random.Random) -> tuple[float | None, Verdict]:
    """(1.0 if x is better, 0.0 if y is, 0.5 for a tie, None if the judge named neither; its raw verdict).

    Order-sensitive judges see x and y in a random order; the raw verdict ("A" = first shown)
    lets a caller measure position bias.
    """
    swap = getattr(judge, "order_sensitive", True) and rng.random() < 0.5
    verdict = judge.verdict(prompt, y, x) if swap else judge.verdict(prompt, x, y)
    if verdict == "tie":
        return 0.5, verdict
    if verdict not in ("A", "B"):
        return None, "invalid"
    return (1.0 if (verdict == "A") != swap else 0.0), verdict


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for `successes` out of `n` trials (ties may count half).

    Unlike the normal approximation it stays inside [0, 1] and is sensible for small n or a
    proportion near 0 or 1. n = 0 gives the uninformative (0, 1).
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


@dataclass
class Tally:
    """Judged pairs counted: wins, losses, ties (half a win each), replies that named neither answer
    (left out of n), and how many decided verdicts went to the answer shown first."""

    wins: int = 0
    losses: int = 0
    ties: int = 0
    invalid: int = 0
    decided: int = 0
    first_picks: int = 0

    def add(self, outcome: float | None, verdict: Verdict) -> None:
        if outcome is None:
            self.invalid += 1
            return
        self.wins += outcome == 1.0
        self.losses += outcome == 0.0
        self.ties += outcome == 0.5
        if verdict in ("A", "B"):
            self.decided += 1
            self.first_picks += verdict == "A"

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float:
        return (self.wins + 0.5 * self.ties) / self.n if self.n else 0.0

    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.wins + 0.5 * self.ties, self.n)

    @property
    def first_position_share(self) -> float | None:
        return self.first_picks / self.decided if self.decided else None


# --- the evaluation stage's judge ------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeItem:
    conversation: list[dict[str, str]]
    tuned: str
    base: str


def make_judge(spec: JudgeSpec, policy: DevicePolicy) -> Judge:
    """The judge `eval.judge` names: an endpoint when base_url is set, else a model tunewise loads."""
    template = judge_template(spec.instructions)
    if spec.base_url:
        return EndpointJudge(spec.base_url, spec.model, key=os.environ.get(spec.api_key_env, ""), template=template,
                             timeout_s=spec.timeout_s,
                             settings_hint="check eval.judge.base_url, eval.judge.model and the key variable")
    return ModelJudge.load(spec.model, template, policy)


def judge_win_rate(items: Sequence[JudgeItem], judge: Judge, *, seed: int = 0) -> JudgeResult:
    """Win-rate of the tuned answers over the base answers (ties count half), with a 95% interval."""
    rng = random.Random(seed)
    tally = Tally()
    for item in items:
        if normalize_answer(item.tuned) == normalize_answer(item.base):
            tally.add(0.5, "tie")  # identical answers need no judge
        else:
            tally.add(*compare(judge, item.conversation, item.tuned, item.base, rng))
    low, high = tally.interval()
    return JudgeResult(judge=judge.name, n=tally.n, wins=tally.wins, losses=tally.losses, ties=tally.ties,
                       invalid=tally.invalid, win_rate=tally.win_rate, ci_low=low, ci_high=high,
                       first_position_share=tally.first_position_share or 0.0)


def items_from(conversations: Sequence[list[dict[str, str]]], tuned: Sequence[str], base: Sequence[str]) -> list[JudgeItem]:
    return [JudgeItem(c, t, b) for c, t, b in zip(conversations, tuned, base)]
