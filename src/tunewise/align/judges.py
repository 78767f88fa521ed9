"""Judges that say which of two answers to a prompt is better.

Two kinds. Score judges rate each answer alone (a scoring function `module:function`, or a trained
reward model): order cannot bias them. Pairwise judges read both answers in one prompt (a model
tunewise loads, or an OpenAI-compatible endpoint): they favour a position more often than not, so
`compare` shows each pair in a random order (seeded) and maps the verdict back.
"""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Literal, Protocol

from tunewise.errors import SpecError, TunewiseError

Verdict = Literal["A", "B", "tie"]
Messages = list[dict[str, str]]

DEFAULT_TEMPLATE = """You compare two answers written by AI assistants to the same request.

Request:
{prompt}

Answer A:
{answer_a}

Answer B:
{answer_b}

Which answer follows the request better: correct, helpful, and no longer than needed?
Reply with the single letter A or B."""
PLACEHOLDERS = ("{prompt}", "{answer_a}", "{answer_b}")


class JudgeError(TunewiseError):
    """A judge could not give a verdict (endpoint unreachable, bad reply)."""


class PairJudge(Protocol):
    name: str

    def verdict(self, prompt: Messages, answer_a: str, answer_b: str) -> Verdict: ...


def render_template(template: str, prompt: Messages, answer_a: str, answer_b: str) -> str:
    """Fill the three placeholders (plain replacement: answers may contain braces)."""
    turns = [m for m in prompt if m["role"] != "system"]
    request = turns[0]["content"] if len(turns) == 1 else "\n".join(f"{m['role']}: {m['content']}" for m in turns)
    return template.replace("{prompt}", request).replace("{answer_a}", answer_a).replace("{answer_b}", answer_b)


def load_template(path: str | Path) -> str:
    """A judge prompt template file; it must contain {prompt}, {answer_a} and {answer_b}."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"--judge-template: {file} not found")
    text = file.read_text(encoding="utf-8")
    missing = [p for p in PLACEHOLDERS if p not in text]
    if missing:
        raise SpecError(f"--judge-template: {file} lacks {', '.join(missing)}",
                        hint="the template must show the request and both answers: {prompt} {answer_a} {answer_b}")
    return text


def parse_letter(reply: str) -> Verdict | None:
    """The first standalone A or B in a reply ("A", "Answer B.", "**B**"); None if there is none."""
    for word in reply.replace("*", " ").replace(":", " ").split():
        token = word.strip(".,;!()[]\"'").upper()
        if token in ("A", "B"):
            return token
        if token == "TIE":
            return "tie"
    return None


class ScoreJudge:
    """Rates answers one at a time: score(prompts, answers) -> list[float]; the higher one wins."""

    order_sensitive = False

    def __init__(self, score_many: Any, name: str):
        self.score_many = score_many
        self.name = name

    @classmethod
    def from_function(cls, spec: str) -> ScoreJudge:
        from tunewise.align.scoring import call_score, load_score_function

        fn = load_score_function(spec)
        return cls(lambda prompts, answers: [call_score(fn, p, a, spec) for p, a in zip(prompts, answers)],
                   f"function {spec}")

    @classmethod
    def from_reward_model(cls, run: str) -> ScoreJudge:
        from tunewise.align.reward_model import RewardScorer

        scorer = RewardScorer.load(run)
        return cls(scorer.score, scorer.name)

    def verdict(self, prompt: Messages, answer_a: str, answer_b: str) -> Verdict:
        a, b = self.score_many([prompt, prompt], [answer_a, answer_b])
        return "tie" if a == b else ("A" if a > b else "B")


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
    def load(cls, name: str, template: str = DEFAULT_TEMPLATE) -> ModelJudge:
        from tunewise.models.merge import load_any

        model, tokenizer = load_any(name)
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
    """An OpenAI-compatible chat endpoint, reached with a plain HTTP POST to /v1/chat/completions."""

    order_sensitive = True

    def __init__(self, url: str, model: str, *, key: str | None = None, template: str = DEFAULT_TEMPLATE,
                 timeout_s: float = 60.0):
        base = url.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model, self.key, self.template, self.timeout_s = model, key, template, timeout_s
        self.name = f"{model} at {base}"

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
            raise JudgeError(f"judge endpoint {self.url} answered HTTP {err.code}",
                             hint="check --judge-url, --judge-model and --judge-key") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise JudgeError(f"judge endpoint {self.url} cannot be reached ({err})") from None
        except (KeyError, IndexError, TypeError, ValueError):
            raise JudgeError(f"judge endpoint {self.url} did not return an OpenAI-style chat completion") from None
        return parse_letter(reply) or "tie"


def make_judge(*, model: str | None = None, url: str | None = None, endpoint_model: str | None = None,
               key: str | None = None, function: str | None = None, reward_model: str | None = None,
               template: str | None = None) -> Any:
    """The one judge the options name (exactly one of model, url, function, reward_model)."""
    given = [name for name, value in (("--judge", model), ("--judge-url", url), ("--judge-fn", function),
                                      ("--judge-reward-model", reward_model)) if value]
    if len(given) != 1:
        raise SpecError(f"name exactly one judge, got {', '.join(given) if given else 'none'}",
                        hint="--judge MODEL_OR_RUN | --judge-url URL --judge-model NAME | --judge-fn module:function "
                        "| --judge-reward-model RUN")
    text = load_template(template) if template else DEFAULT_TEMPLATE
    if function:
        return ScoreJudge.from_function(function)
    if reward_model:
        return ScoreJudge.from_reward_model(reward_model)
    if url:
        if not endpoint_model:
            raise SpecError("--judge-url needs --judge-model NAME (the model the endpoint serves)")
        return EndpointJudge(url, endpoint_model, key=key, template=text)
    return ModelJudge.load(model, text)


def compare(judge: Any, prompt: Messages, x: str, y: str, rng: random.Random) -> tuple[float, Verdict]:
    """(1.0 if x is better, 0.0 if y is, 0.5 for a tie; the judge's raw verdict).

    Order-sensitive judges see x and y in a random order; the raw verdict ("A" = first shown)
    lets a caller measure position bias.
    """
    swap = getattr(judge, "order_sensitive", True) and rng.random() < 0.5
    verdict = judge.verdict(prompt, y, x) if swap else judge.verdict(prompt, x, y)
    if verdict == "tie":
        return 0.5, verdict
    x_won = (verdict == "A") != swap
    return (1.0 if x_won else 0.0), verdict
