"""A decoder-only transformer's shape, and its parameter count per module.

The memory model works from this shape rather than from a total parameter count: which tensors
are quantized, trained, adapted or sharded depends on the module (embeddings stay in 16/32 bits
under QLoRA, LoRA adapts the linear layers, a tied head shares the embedding matrix).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tunewise.errors import ModelError

# Families whose MLP is a plain up/down projection with LayerNorm and biases (GPT-2 style);
# everything else is treated as Llama-like (RMSNorm, SwiGLU gate/up/down, no biases unless the
# config says so).
_PLAIN_MLP_TYPES = {"gpt2", "gpt_neox", "gptj", "opt", "falcon", "bloom", "gpt_bigcode"}
# Default of tie_word_embeddings for model types whose config.json may omit it.
_TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3_text", "gpt2", "opt", "bloom", "gpt_bigcode"}


@dataclass(frozen=True)
class LinearModule:
    """One linear layer of a decoder block: its name (peft's target name) and its size."""

    name: str
    in_features: int
    out_features: int
    bias: bool = False

    @property
    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


@dataclass(frozen=True)
class ModelShape:
    """The numbers that size a decoder-only transformer."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    tied_embeddings: bool
    gated_mlp: bool = True
    attention_bias: bool = False  # q, k, v and o projections
    qkv_bias: bool = False  # q, k, v only (Qwen2)
    mlp_bias: bool = False
    qk_norm: bool = False  # per-head RMSNorm on queries and keys (Qwen3)
    layer_norm_bias: bool = False  # LayerNorm (GPT-2 style) rather than RMSNorm
    position_embeddings: int = 0  # learned absolute positions (GPT-2 style); 0 with rotary
    model_type: str = "llama"
    source: str = ""  # where the shape came from, printed with the plan
    assumed: bool = False  # True when guessed from a parameter count

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_modules(self) -> list[LinearModule]:
        """The linear layers of one decoder block, named as peft targets them."""
        h, qb = self.hidden_size, self.attention_bias or self.qkv_bias
        mods = [
            LinearModule("q_proj", h, self.q_dim, qb),
            LinearModule("k_proj", h, self.kv_dim, qb),
            LinearModule("v_proj", h, self.kv_dim, qb),
            LinearModule("o_proj", self.q_dim, h, self.attention_bias),
        ]
        i, mb = self.intermediate_size, self.mlp_bias
        if self.gated_mlp:
            mods += [LinearModule("gate_proj", h, i, mb), LinearModule("up_proj", h, i, mb)]
        else:
            mods += [LinearModule("up_proj", h, i, mb)]
        mods.append(LinearModule("down_proj", i, h, mb))
        return mods

    def norm_params_per_layer(self) -> int:
        per_norm = self.hidden_size * (2 if self.layer_norm_bias else 1)
        qk = 2 * self.head_dim if self.qk_norm else 0
        return 2 * per_norm + qk

    def param_counts(self) -> dict[str, int]:
        """Parameters per module group; `total` counts a tied head once, as torch does."""
        linears = self.linear_modules()
        attention = sum(m.params for m in linears if m.name in ("q_proj", "k_proj", "v_proj", "o_proj"))
        mlp = sum(m.params for m in linears) - attention
        final_norm = self.hidden_size * (2 if self.layer_norm_bias else 1)
        counts = {
            "embeddings": self.vocab_size * self.hidden_size + self.position_embeddings * self.hidden_size,
            "attention": attention * self.num_layers,
            "mlp": mlp * self.num_layers,
            "norms": self.norm_params_per_layer() * self.num_layers + final_norm,
            "lm_head": 0 if self.tied_embeddings else self.vocab_size * self.hidden_size,
        }
        counts["total"] = sum(counts.values())
        return counts

    @property
    def total_params(self) -> int:
        return self.param_counts()["total"]

    @property
    def linear_params(self) -> int:
        """Parameters in the decoder blocks' linear layers: what QLoRA stores in 4 bits."""
        return sum(m.params for m in self.linear_modules()) * self.num_layers

    def describe(self) -> str:
        kv = f", {self.num_kv_heads} kv-heads" if self.num_kv_heads != self.num_heads else ""
        tied = "tied" if self.tied_embeddings else "untied"
        return (
            f"{self.num_layers} layers, hidden {self.hidden_size}, intermediate {self.intermediate_size}, "
            f"{self.num_heads} heads{kv}, vocab {self.vocab_size} ({tied} head): "
            f"{self.total_params / 1e9:.2f}B parameters"
        )


# --- from a model's config -----------------------------------------------------------------------


def _pick(cfg: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if cfg.get(name) is not None:
            return cfg[name]
    return default


def shape_from_config(config: dict[str, Any], source: str = "config") -> ModelShape:
    """Read a Hugging Face config.json (as a dict) into a ModelShape."""
    cfg = dict(config.get("text_config") or config)
    model_type = str(cfg.get("model_type") or config.get("model_type") or "llama")
    hidden = _pick(cfg, "hidden_size", "n_embd", "d_model")
    layers = _pick(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _pick(cfg, "num_attention_heads", "n_head")
    vocab = _pick(cfg, "vocab_size")
    if not all(isinstance(v, int) for v in (hidden, layers, heads, vocab)):
        raise ModelError(
            f"{source}: cannot size the model: hidden_size, num_hidden_layers, num_attention_heads and "
            "vocab_size are needed in its config",
            hint="give the architecture with --params and --layers --hidden --vocab --heads",
        )
    plain = model_type in _PLAIN_MLP_TYPES
    tied_default = model_type in _TIED_BY_DEFAULT
    return ModelShape(
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=_pick(cfg, "num_key_value_heads", "num_kv_heads", default=heads),
        head_dim=_pick(cfg, "head_dim", default=hidden // heads),
        intermediate_size=_pick(cfg, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden),
        tied_embeddings=bool(_pick(cfg, "tie_word_embeddings", default=tied_default)),
        gated_mlp=not plain,
        attention_bias=bool(cfg.get("attention_bias", plain)),
        qkv_bias=model_type.startswith("qwen2"),
        mlp_bias=bool(cfg.get("mlp_bias", plain)),
        qk_norm=model_type.startswith("qwen3"),
        layer_norm_bias=plain,
        position_embeddings=int(_pick(cfg, "n_positions", default=0)) if model_type == "gpt2" else 0,
        model_type=model_type,
        source=source,
    )


def shape_from_model_dir(model_dir: str | Path) -> ModelShape:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise ModelError(f"{model_dir}: no config.json; it is not a Hugging Face model directory")
    return shape_from_config(json.loads(path.read_text()), source=str(path))


# --- from a parameter count ----------------------------------------------------------------------


@cache
def known_shapes() -> dict[str, dict[str, Any]]:
    text = resources.files("tunewise.plan").joinpath("model_shapes.yaml").read_text()
    return yaml.safe_load(text)


def _preset_shape(name: str, preset: dict[str, Any]) -> ModelShape:
    return ModelShape(
        vocab_size=int(preset["vocab"]),
        hidden_size=int(preset["hidden"]),
        num_layers=int(preset["layers"]),
        num_heads=int(preset["heads"]),
        num_kv_heads=int(preset["kv_heads"]),
        head_dim=int(preset["hidden"]) // int(preset["heads"]),
        intermediate_size=int(preset["intermediate"]),
        tied_embeddings=bool(preset["tied"]),
        source=f"assumed {name} shape",
        assumed=True,
    )


def shape_from_params(
    params: float,
    *,
    layers: int | None = None,
    hidden: int | None = None,
    vocab: int | None = None,
    intermediate: int | None = None,
    heads: int | None = None,
    kv_heads: int | None = None,
) -> ModelShape:
    """The usual Llama-family shape for a model of `params` parameters.

    The nearest known shape (by log parameter count) fills whatever the caller does not give.
    When the caller gives no layer count and the result is more than 15% off `params`, the layer
    count is solved for, so the total stays close to what was asked.
    """
    if params <= 0:
        raise ModelError(f"--params must be positive, got {params:g}")
    given: dict[str, Any] = {k: v for k, v in dict(layers=layers, hidden=hidden, vocab=vocab, intermediate=intermediate,
                                                   heads=heads, kv_heads=kv_heads).items() if v is not None}
    name, preset = min(known_shapes().items(), key=lambda kv: abs(math.log(float(kv[1]["params"]) / params)))
    shape = _preset_shape(name, preset)
    head_dim = shape.head_dim
    if hidden is not None:
        if heads is None:
            heads = max(1, hidden // head_dim)
        if intermediate is None:
            ratio = shape.intermediate_size / shape.hidden_size
            intermediate = int(round(hidden * ratio / 256)) * 256 or 4 * hidden
    heads = heads or shape.num_heads
    if kv_heads is None:
        kv_heads = max(1, round(heads * shape.num_kv_heads / shape.num_heads))
    shape = replace(
        shape,
        num_layers=layers or shape.num_layers,
        hidden_size=hidden or shape.hidden_size,
        vocab_size=vocab or shape.vocab_size,
        intermediate_size=intermediate or shape.intermediate_size,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=(hidden or shape.hidden_size) // heads,
    )
    if layers is None and abs(shape.total_params / params - 1) > 0.15:
        per_layer = (shape.total_params - shape.param_counts()["embeddings"] - shape.param_counts()["lm_head"]) / shape.num_layers
        fixed = shape.total_params - per_layer * shape.num_layers
        shape = replace(shape, num_layers=max(1, round((params - fixed) / per_layer)))
        name += f", {shape.num_layers} layers to reach {params / 1e9:.3g}B"
    extra = f"; given: {', '.join(f'{k}={v}' for k, v in given.items())}" if given else ""
    return replace(shape, source=f"assumed Llama-family shape ({name}){extra}")
