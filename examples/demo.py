"""The end-to-end demo on the bundled SmolLM2-135M-Instruct (`make demo`, about 4 minutes on 2 idle CPU cores).

1. generate a small task dataset with a fixed seed (examples/make_demo_data.py),
2. validate it,
3. fine-tune it with LoRA (configs/demo-lora.yaml); training ends with tunewise's evaluation,
   which measures held-out exact match of the base and the tuned model, and the gate,
4. show before/after exact match and samples.

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


def main() -> int:
    parser = argparse.ArgumentParser(description="tunewise end-to-end demo")
    parser.add_argument("--restart", action="store_true", help="train again even if the demo run exists")
    args = parser.parse_args()

    from tunewise.data import validate_file
    from tunewise.data import render_report
    from tunewise.errors import TunewiseError
    from tunewise.models import resolve_base_model
    from tunewise.models.load import load_tokenizer
    from tunewise.spec import load_spec
    from tunewise.train.run import run_training_job
    from tunewise.workspace import home

    started = time.monotonic()
    data_dir = home() / "demo"
    train_path, test_path = generate(data_dir, seed=7, train=120, test=40)
    console.rule("[bold]1. data")
    console.print(f"generated {train_path} and {test_path} (seed 7)")
    base_dir = resolve_base_model("smollm2-135m-instruct")
    tokenizer = load_tokenizer(base_dir)
    report = validate_file(train_path, tokenizer=tokenizer, max_length=256)
    render_report(report, console)
    if report.errors:
        return 1

    console.rule("[bold]2. LoRA fine-tuning, then evaluation against the base model")
    try:
        spec = load_spec(ROOT / "configs" / "demo-lora.yaml",
                         [f"data.train={train_path}", f"data.validation={test_path}"])
        result = run_training_job(spec, spec_path=ROOT / "configs" / "demo-lora.yaml", restart=args.restart)
    except TunewiseError as err:
        console.print(f"[red]error:[/] {err}")
        return 2

    console.rule("[bold]3. before / after")
    report = json.loads((result.run_dir / "eval.json").read_text())
    before, after = report["base_metrics"]["exact_match"], report["metrics"]["exact_match"]
    console.print(f"held-out exact match on {report['n_examples']} unseen examples: "
                  f"before [bold]{before:.0%}[/] -> after [bold]{after:.0%}[/]")
    table = Table(title="before / after samples", show_lines=True)
    for column in ("input", "expected", "before (base)", "after (LoRA)"):
        table.add_column(column, overflow="fold")
    for sample in report["samples"][:4]:
        text = sample["prompt"].split("Text: ", 1)[-1]
        table.add_row(text, sample["reference"], (sample["base"] or "")[:80], sample["tuned"][:80])
    console.print(table)
    console.print(f"run directory: {result.run_dir}   total time: {time.monotonic() - started:.0f} s")
    console.print(f"next: tunewise report {result.run_dir.name}   |   tunewise register {result.run_dir.name} --name demo")
    return 0 if after > before else 1


if __name__ == "__main__":
    sys.exit(main())
