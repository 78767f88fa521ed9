"""The fine-tuned model and its base, loaded once for a whole evaluation.

LoRA-family adapters are switched off in place to get the base (peft's `disable_adapter`), so the
base weights are loaded once; full fine-tunes and prompt-learning methods load the base separately.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.models.artifact import ArtifactInfo
from tunewise.models.device import DevicePolicy


def base_model_dir(info: ArtifactInfo) -> Path:
    """Where the artifact's base model lives: the recorded directory, else re-resolved by name."""
    recorded = Path(info.base_model_dir)
    if recorded.is_dir():
        return recorded
    from tunewise.models.resolve import resolve_base_model

    return resolve_base_model(info.base_model)


@dataclass
class ModelPair:
    tuned: Any
    tokenizer: Any
    info: ArtifactInfo
    policy: DevicePolicy
    _separate_base: Any = field(default=None, repr=False)

    @property
    def toggles_adapter(self) -> bool:
        peft_config = getattr(self.tuned, "peft_config", None)
        if not peft_config:
            return False
        return not peft_config[self.tuned.active_adapter].is_prompt_learning

    @contextmanager
    def base(self) -> Iterator[Any]:
        """The base model: the tuned one with its adapter disabled, or a separately loaded copy."""
        if self.toggles_adapter:
            with self.tuned.disable_adapter():
                yield self.tuned
            return
        if self._separate_base is None:
            from tunewise.models.load import load_causal_lm

            self._separate_base = load_causal_lm(base_model_dir(self.info), self.policy).eval()
        yield self._separate_base


def load_pair(run_dir: Path, policy: DevicePolicy) -> ModelPair:
    from tunewise.models.artifact import load_artifact

    model, tokenizer, info = load_artifact(run_dir, policy)
    return ModelPair(tuned=model, tokenizer=tokenizer, info=info, policy=policy)
