"""Win-rate of a trained policy against its reference on held-out prompts, with a Wilson interval.

Both models answer each prompt greedily; a judge (scoring function, reward model, judge model or
endpoint) decides each pair. Ties count half. Pairwise judges see each pair in a random order, and
the share of verdicts that went to the first position is reported to expose any position bias.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunewise.eval.judge import Tally, compare, wilson_interval

__all__ = ["WinRate", "evaluate_win_rate", "held_out_prompts", "reference_model", "win_rate", "wilson_interval"]


@dataclass
class WinRate:
    n: int
    wins: int
    losses: int
    ties: int
    win_rate: float  # (wins + ties / 2) / n
    ci_low: float  # 95% Wilson interval
    ci_high: float
    judge: str
    first_position_share: float | None = None  # pairwise judges: share of decided verdicts for position A
    invalid: int = 0  # replies that named neither answer; left out of n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        unjudged = f" ({self.invalid} replies named neither answer and are left out)" if self.invalid else ""
        return (f"win-rate {self.win_rate:.1%} (95% CI {self.ci_low:.1%}-{self.ci_high:.1%}) over {self.n} prompts: "
                f"{self.wins} wins, {self.losses} losses, {self.ties} ties{unjudged}; judge: {self.judge}")


def win_rate(prompts: list[list[dict[str, str]]], policy_answers: list[str], reference_answers: list[str],
             judge: Any, *, seed: int = 0) -> WinRate:
    """Judge policy vs reference answer for each prompt; identical answers tie without asking the judge."""
    if not (len(prompts) == len(policy_answers) == len(reference_answers)):
        raise ValueError("prompts, policy_answers and reference_answers must have the same length")
    rng = random.Random(seed)
    tally = Tally()
    for prompt, ours, theirs in zip(prompts, policy_answers, reference_answers):
        if ours.strip() == theirs.strip():
            tally.add(0.5, "tie")
        else:
            tally.add(*compare(judge, prompt, ours, theirs, rng))
    low, high = tally.interval()
    first = tally.first_position_share if getattr(judge, "order_sensitive", True) else None
    return WinRate(tally.n, tally.wins, tally.losses, tally.ties, tally.win_rate, low, high, judge.name, first,
                   tally.invalid)


def held_out_prompts(run_dir: Path, limit: int | None = None) -> list[list[dict[str, str]]]:
    """The prompts of the run's held-out split (`<run>/data/validation.jsonl`, or `prompts.jsonl` for RL runs)."""
    from tunewise.align.data import HELD_OUT_FILES, prompt_of
    from tunewise.errors import DataError

    found = [run_dir / "data" / name for name in HELD_OUT_FILES if (run_dir / "data" / name).is_file()]
    if not found:
        raise DataError(f"{run_dir}: no held-out rows (no data/validation.jsonl)", hint="pass --prompts FILE")
    path = found[0]
    prompts = [p for p in (prompt_of(json.loads(line)) for line in path.read_text().splitlines() if line.strip()) if p]
    if not prompts:
        raise DataError(f"{path}: the validation split is empty", hint="set data.val_fraction above 0, or pass --prompts FILE")
    return prompts[:limit] if limit else prompts


def evaluate_win_rate(run: str | Path, judge: Any, *, prompts: list | None = None, limit: int | None = 64,
                      max_new_tokens: int = 128, seed: int = 0, write: bool = True) -> WinRate:
    """Win-rate of a run's artifact against its reference: the base with the adapter switched off, or
    the base model for full-weight runs (for a later stage of a chained job, the stage's starting model).

    Args:
        run: run directory or name.
        judge: from tunewise.align.judges.make_judge.
        prompts: prompts (text or messages); default: the run's held-out split.
        limit: at most this many prompts.
        write: also store the result as `<run>/winrate.json`.
    """
    from tunewise.align.synthesize import as_messages
    from tunewise.models import resolve_device_policy
    from tunewise.models.artifact import find_artifact_dir, load_artifact
    from tunewise.models.generate import generate_replies

    artifact = find_artifact_dir(run)
    run_dir = artifact.parent
    chosen = [as_messages(p) for p in prompts] if prompts is not None else held_out_prompts(run_dir)
    chosen = chosen[:limit] if limit else chosen
    model, tokenizer, info = load_artifact(artifact, resolve_device_policy())
    ours = generate_replies(model, tokenizer, chosen, max_new_tokens=max_new_tokens)
    with reference_model(model, info) as reference:
        theirs = generate_replies(reference, tokenizer, chosen, max_new_tokens=max_new_tokens)
    result = win_rate(chosen, ours, theirs, judge, seed=seed)
    if write:
        samples = [{"prompt": p, "policy": a, "reference": b} for p, a, b in list(zip(chosen, ours, theirs))[:10]]
        (run_dir / "winrate.json").write_text(json.dumps({**result.to_dict(), "samples": samples}, indent=2))
    return result


@contextmanager
def reference_model(model: Any, info: Any) -> Iterator[Any]:
    """The reference for an artifact: the same model with its LoRA-family adapter off, else the base loaded."""
    peft_config = getattr(model, "peft_config", None)
    if peft_config and not peft_config[model.active_adapter].is_prompt_learning:
        with model.disable_adapter():
            yield model
        return
    from tunewise.models import resolve_device_policy
    from tunewise.models.load import load_causal_lm
    from tunewise.models.resolve import resolve_base_model

    base = Path(info.base_model_dir)
    yield load_causal_lm(base if base.is_dir() else resolve_base_model(info.base_model), resolve_device_policy()).eval()
