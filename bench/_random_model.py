"""Model directories with random weights, for timing and memory on machines without the real weights.

Speed and memory depend on a model's shape, not on its weight values, so a GPU benchmark can run on
a random model of the bundled model's shape (or of a larger model's) built on the spot from a
config and the bundled tokenizer. Results from such a model say nothing about quality.

    python bench/_random_model.py --source DIR --out DIR [--shape llama-3.1-8b] [--device cuda]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "generation_config.json")

# Published architecture of Llama 3.1 8B (its config.json); the bundled SmolLM2 is a Llama too, so
# only the sizes change. The bundled tokenizer's ids (< 49,152) are all valid in the larger vocabulary.
SHAPES = {
    "source": {},
    "llama-3.1-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
                     "rope_theta": 500000.0, "max_position_embeddings": 8192, "tie_word_embeddings": False},
}


def write_random_model(source: Path, out: Path, *, shape: str = "source", device: str = "cpu",
                       dtype_name: str = "bfloat16", seed: int = 0) -> Path:
    """Write a transformers model directory at `out`: `source`'s config (resized to `shape`) with random
    weights, and `source`'s tokenizer files. Returns `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(source)
    for key, value in SHAPES[shape].items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype_name))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    (out / "RANDOM_WEIGHTS.txt").write_text(f"Random weights in the shape '{shape}' of {source.name}: "
                                            "for timing and memory only.\n")
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="Directory with config.json and tokenizer files.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="source")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    print(write_random_model(args.source, args.out, shape=args.shape, device=args.device, dtype_name=args.dtype))


if __name__ == "__main__":
    main()
