"""The end-to-end demo on the bundled SmolLM2-135M-Instruct (`make demo`, about 10 minutes on 2 CPU cores).

1. generate a small task dataset with a fixed seed (examples/make_demo_data.py),
2. validate it,
3. measure held-out exact match of the base model,
4. fine-tune it with LoRA (configs/demo-lora.yaml),
5. measure exact match again and show before/after samples.

Re-running resumes or reuses the finished run; `python examples/demo.py --restart` trains anew.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from make_demo_data import generate  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console()


def exact_match(model, tokenizer, rows: list[dict]) -> tuple[float, list[str]]:
    from tunewise.models.generate import generate_replies

    prompts = [row["messages"][:-1] for row in rows]
    replies = generate_replies(model, tokenizer, prompts, max_new_tokens=24, batch_size=8)
    hits = sum(reply.strip() == row["messages"][-1]["content"] for reply, row in zip(replies, rows))
    return hits / len(rows), replies


def main() -> int:
    parser = argparse.ArgumentParser(description="tunewise end-to-end demo")
    parser.add_argument("--restart", action="store_true", help="train again even if the demo run exists")
    args = parser.parse_args()

    from tunewise.data import validate_file
    from tunewise.data import render_report
    from tunewise.errors import TunewiseError
    from tunewise.models import resolve_base_model, resolve_device_policy
    from tunewise.models.artifact import load_artifact
    from tunewise.models.load import load_causal_lm, load_tokenizer
    from tunewise.spec import load_spec
    from tunewise.train.run import run_training_job
    from tunewise.workspace import home

    started = time.monotonic()
    data_dir = home() / "demo"
    train_path, test_path = generate(data_dir, seed=7, train=200, test=40)
    test_rows = [json.loads(line) for line in test_path.read_text().splitlines()]
    console.rule("[bold]1. data")
    console.print(f"generated {train_path} and {test_path} (seed 7)")
    base_dir = resolve_base_model("smollm2-135m-instruct")
    tokenizer = load_tokenizer(base_dir)
    report = validate_file(train_path, tokenizer=tokenizer, max_length=256)
    render_report(report, console)
    if report.errors:
        return 1

    console.rule("[bold]2. base model, before training")
    policy = resolve_device_policy()
    base = load_causal_lm(base_dir, policy).eval()
    before, before_replies = exact_match(base, tokenizer, test_rows)
    console.print(f"held-out exact match before: [bold]{before:.0%}[/]")
    del base

    console.rule("[bold]3. LoRA fine-tuning")
    try:
        spec = load_spec(ROOT / "configs" / "demo-lora.yaml", [f"data.train={train_path}"])
        result = run_training_job(spec, spec_path=ROOT / "configs" / "demo-lora.yaml", restart=args.restart)
    except TunewiseError as err:
        console.print(f"[red]error:[/] {err}")
        return 2

    console.rule("[bold]4. fine-tuned model, after training")
    tuned, tuned_tokenizer, _ = load_artifact(result.run_dir / "artifact", policy)
    after, after_replies = exact_match(tuned, tuned_tokenizer, test_rows)
    console.print(f"held-out exact match after:  [bold]{after:.0%}[/]  (before: {before:.0%})")

    table = Table(title="before / after samples", show_lines=True)
    for column in ("input", "expected", "before", "after"):
        table.add_column(column, overflow="fold")
    for row, b, a in list(zip(test_rows, before_replies, after_replies))[:4]:
        text = row["messages"][0]["content"].split("Text: ", 1)[-1]
        table.add_row(text, row["messages"][-1]["content"], b[:80], a[:80])
    console.print(table)
    console.print(f"run directory: {result.run_dir}   total time: {time.monotonic() - started:.0f} s")
    return 0 if after > before else 1


if __name__ == "__main__":
    sys.exit(main())
