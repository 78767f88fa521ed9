"""Load a trained `reward` run and score (prompt, answer) pairs with it.

The text is formatted exactly as the reward trainer saw it: the chat template applied to the
prompt messages plus the answer as an assistant turn, scored at the last token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.errors import ModelError
from tunewise.models.device import DevicePolicy, resolve_device_policy


def load_reward_model(path: str | Path, policy: DevicePolicy | None = None) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) for a `reward` run, its artifact folder, or a run name.

    An adapter artifact loads the base as AutoModelForSequenceClassification, then the adapter
    and its trained score head.
    """
    from transformers import AutoModelForSequenceClassification

    from tunewise.models.artifact import read_artifact_info
    from tunewise.models.load import load_tokenizer

    policy = policy or resolve_device_policy()
    try:
        info = read_artifact_info(path)
    except ModelError:
        raise ModelError(f"reward model {path}: no trained artifact found",
                         hint="give the run directory or name of a `method: reward` run") from None
    if info.method != "reward":
        raise ModelError(f"reward model {path}: the run trained method {info.method!r}, not a reward model",
                         hint="train one with method: reward on preference pairs first")
    tokenizer = load_tokenizer(info.path)
    if info.adapter:
        from peft import PeftModel

        base = AutoModelForSequenceClassification.from_pretrained(str(_base_dir(info)), num_labels=1,
                                                                  dtype=policy.dtype)
        base.config.pad_token_id = tokenizer.pad_token_id
        model = PeftModel.from_pretrained(base, str(info.path)).merge_and_unload()
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(info.path), dtype=policy.dtype)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.requires_grad_(False)
    return model.to(policy.device).eval(), tokenizer


def _base_dir(info: Any) -> Path:
    """The recorded base directory, else the base resolved again by name (e.g. on another machine)."""
    recorded = Path(info.base_model_dir)
    if recorded.is_dir():
        return recorded
    from tunewise.models.resolve import resolve_base_model

    return resolve_base_model(info.base_model)


class RewardScorer:
    """Scores answers with a reward model; higher is better.

    Args:
        model, tokenizer: from `load_reward_model`.
        batch_size: sequences per forward pass.
    """

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 8, name: str = "reward model"):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.name = name

    @classmethod
    def load(cls, path: str | Path, policy: DevicePolicy | None = None) -> RewardScorer:
        model, tokenizer = load_reward_model(path, policy)
        return cls(model, tokenizer, name=f"reward model {path}")

    def texts(self, prompts: list[list[dict[str, str]]], answers: list[str]) -> list[str]:
        return [self.tokenizer.apply_chat_template(p + [{"role": "assistant", "content": a}], tokenize=False)
                for p, a in zip(prompts, answers)]

    def score(self, prompts: list[list[dict[str, str]]], answers: list[str]) -> list[float]:
        """One score per (prompt messages, answer text)."""
        import torch

        texts = self.texts(prompts, answers)
        device = next(self.model.parameters()).device
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                                 padding_side="right", add_special_tokens=False).to(device)
            with torch.no_grad():
                scores.extend(float(s) for s in self.model(**enc).logits[:, 0].float())
        return scores
