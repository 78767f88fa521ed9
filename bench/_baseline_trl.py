"""The baseline: the LoRA SFT script a user would write with TRL, timed per optimizer step.

TRL's SFTTrainer and peft's LoraConfig (r=16, all-linear, alpha 32 as tunewise's default, peft's
default dropout 0), no packing, TRL's defaults otherwise (including gradient_checkpointing=True,
loss on every token), bf16 only on CUDA:
SFTConfig autocasts to bf16 by default, which runs about 300x slower on this CPU, so a user here
sets bf16=False. Instrumentation only watches: a forward pre-hook counts each batch's real tokens
and a callback stamps the end of every optimizer step.

    python bench/_baseline_trl.py --data FILE --steps N --out RESULT.json [--max-length 512] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (StepProbes, apply_thread_setting, load_average, peak_around, peak_rss_mib,  # noqa: E402
                     side_parser, training_device)


def _args() -> argparse.Namespace:
    parser = side_parser(__doc__.splitlines()[0])
    parser.add_argument("--gradient-checkpointing", choices=("default", "on", "off"), default="default")
    return parser.parse_args()


def main() -> None:
    args = _args()
    apply_thread_setting()
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tunewise.models import resolve_base_model

    device, dtype = training_device()
    model_dir = str(resolve_base_model(args.model))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    dataset = load_dataset("json", data_files=str(args.data), split="train")
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=args.lora_dropout, target_modules="all-linear",
                             task_type="CAUSAL_LM")
    extra = {} if args.gradient_checkpointing == "default" else {"gradient_checkpointing": args.gradient_checkpointing == "on"}
    config = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        max_length=args.max_length,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        max_grad_norm=1.0,
        seed=42,
        bf16=device == "cuda",
        use_cpu=device == "cpu",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        **extra,
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)

    lengths: list[list[int]] = []  # real tokens per row, one list per training forward

    def count_tokens(module, _args, kwargs):
        mask = kwargs.get("attention_mask")
        if module.training and mask is not None and mask.dim() == 2:
            lengths.append([int(n) for n in mask.sum(dim=1)])

    step_end: list[dict[str, float]] = []  # wall and process CPU seconds, and the probe seconds so far
    probes = StepProbes(device, dtype)

    class StepClock(TrainerCallback):
        def on_step_end(self, *_args, **_kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            step_end.append({"wall": time.monotonic(), "cpu_s": time.process_time(), **probes.spent()})
            probes.sample()  # between this step and the next; the throughput clock leaves it out

    trainer.model.get_base_model().get_decoder().register_forward_pre_hook(count_tokens, with_kwargs=True)
    trainer.add_callback(StepClock())
    load_before = load_average()
    t0 = time.monotonic()
    _, peak = peak_around(trainer.train, device, dtype)
    steps = []
    for i, (rows, clock) in enumerate(zip(lengths, step_end)):
        steps.append({"step": i + 1, "end_s": clock["wall"] - t0, "cpu_s": clock["cpu_s"], "probe_s": clock["probe_s"],
                      "probe_cpu_s": clock["probe_cpu_s"], "tokens": sum(rows), "rows": rows,
                      "padded_tokens": len(rows) * max(rows),
                      "head_positions": sum(n - 1 for n in rows)})  # TRL scores every labelled next token
    result = {
        "side": "baseline", "device": device, "dtype": str(dtype), "matmul_peak_flops": peak,
        "matmul_probes": probes.samples, "threads": torch.get_num_threads(),
        "gradient_checkpointing": bool(trainer.args.gradient_checkpointing), "steps": steps,
        "load_average": [load_before, load_average()], "peak_rss_mib": round(peak_rss_mib(), 1),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
    args.out.write_text(json.dumps(result))
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
