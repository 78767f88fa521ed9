"""Alignment demo on the bundled SmolLM2-135M-Instruct: teach it to answer in one short sentence with DPO.

The base model answers "What is X?" with several sentences. The preference data is built from the
base model's own greedy answers (deterministic): chosen = the answer cut after its first sentence,
rejected = the whole multi-sentence answer, so a pair differs only in stopping after one sentence.
DPO with LoRA (configs/dpo-demo.yaml) learns the preference;
then the trained model and its reference (the same base with the adapter off) answer held-out
questions on subjects never seen in training, and a rule judges each pair:

    an answer passes if it is ONE sentence of 3 to 25 words; a pass beats a fail, two passes or
    two fails tie (ties count half).

A 135M model is too weak to judge answers itself, hence a rule the demo states. The win-rate is
reported with its 95% Wilson interval; the demo succeeds when the whole interval is above 50%.
A few minutes on 2 idle CPU cores. `python examples/demo_align.py --restart` trains anew.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
console = Console()

SUBJECTS = [
    "the Moon", "the Sun", "a volcano", "photosynthesis", "a rainbow", "the heart", "a glacier", "gravity", "a compass",
    "an atom", "a bee", "the ocean", "a thermometer", "a bridge", "bread", "a piano", "the liver", "a desert",
    "a telescope", "coffee", "a battery", "the wind", "a map", "an earthquake", "a library", "cheese", "a lighthouse",
    "the lungs", "a spider", "a clock", "snow", "a river", "a microscope", "honey", "a forest", "a rocket", "a vaccine",
    "the brain", "a magnet", "a cloud", "tea", "a camel", "an island", "a calendar", "a penguin", "electricity",
    "a seed", "the skin", "a tide", "a whale", "a candle", "the internet", "a mountain", "salt", "a dictionary",
    "a tornado", "a kidney", "an owl", "a windmill", "a comet", "rice", "a cactus", "a keyboard", "a dolphin",
    "the equator", "a lemon", "a skeleton", "a storm", "a canal", "chocolate", "a ladder", "a satellite",
]
QUESTIONS = ["What is {s}?", "Tell me about {s}.", "Can you explain {s}?", "Describe {s}.", "What do you know about {s}?"]
HELD_OUT = 24  # subjects kept out of training: the win-rate is measured on questions about them


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def make_questions(seed: int = 7) -> tuple[list[str], list[str]]:
    """(training questions, held-out questions), one question per subject; no subject is in both."""
    rng = random.Random(seed)
    subjects = SUBJECTS[:]
    rng.shuffle(subjects)

    def ask(subject: str) -> str:
        return rng.choice(QUESTIONS).format(s=subject)

    return [ask(s) for s in subjects[HELD_OUT:]], [ask(s) for s in subjects[:HELD_OUT]]


def make_pairs(questions: list[str], path: Path) -> int:
    """On-policy pairs from the base model's own greedy answers: chosen = its first sentence,
    rejected = its whole multi-sentence answer. The pair differs only in stopping after one sentence."""
    from tunewise.models import resolve_base_model, resolve_device_policy
    from tunewise.models.generate import generate_replies
    from tunewise.models.load import load_causal_lm, load_tokenizer

    base_dir = resolve_base_model("smollm2-135m-instruct")
    model, tokenizer = load_causal_lm(base_dir, resolve_device_policy()).eval(), load_tokenizer(base_dir)
    answers = generate_replies(model, tokenizer, [[{"role": "user", "content": q}] for q in questions],
                               max_new_tokens=64)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", encoding="utf-8") as fh:
        for question, answer in zip(questions, answers):
            parts = sentences(answer)
            if len(parts) >= 2 and one_short_sentence("", parts[0]):
                fh.write(json.dumps({"prompt": question, "chosen": parts[0], "rejected": answer}) + "\n")
                written += 1
    return written


def one_short_sentence(prompt: str, answer: str) -> float:
    """The demo's judge: 1.0 for one sentence of 3-25 words, else 0.0."""
    words = len(answer.split())
    return float(len(sentences(answer)) == 1 and 3 <= words <= 25 and answer.strip()[-1:] in ".!?")


def main() -> int:
    parser = argparse.ArgumentParser(description="tunewise alignment demo (DPO, one-sentence answers)")
    parser.add_argument("--restart", action="store_true", help="train again even if the demo run exists")
    args = parser.parse_args()

    from tunewise.align.judges import ScoreJudge
    from tunewise.align.winrate import evaluate_win_rate
    from tunewise.errors import TunewiseError
    from tunewise.spec import load_spec
    from tunewise.train.run import run_training_job
    from tunewise.workspace import home

    started = time.monotonic()
    console.rule("[bold]1. preference data from the base model's own answers")
    train_questions, questions = make_questions()
    data = home() / "demo-align" / "preferences.jsonl"
    if args.restart or not data.is_file():
        count = make_pairs(train_questions, data)
    else:
        count = sum(1 for _ in data.open())
    console.print(f"{count} pairs in {data} (chosen: the base's first sentence; rejected: its whole answer); "
                  f"{len(questions)} held-out questions on other subjects")

    console.rule("[bold]2. DPO with LoRA (configs/dpo-demo.yaml)")
    spec_path = ROOT / "configs" / "dpo-demo.yaml"
    try:
        result = run_training_job(load_spec(spec_path, [f"data.train={data}"]), spec_path=spec_path,
                                  restart=args.restart)
    except TunewiseError as err:
        console.print(f"[red]error:[/] {err}")
        return 2
    last = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    console.print(f"last step: loss {last['train_loss']:.3f}, reward margin {last['reward_margin']:.2f}, "
                  f"preference accuracy {last.get('val_preference_accuracy', last['preference_accuracy']):.0%}, "
                  f"KL to reference {last.get('kl_ref', float('nan')):.3f} nats/token")

    console.rule("[bold]3. held-out win-rate against the reference")
    console.print("judge: an answer passes if it is one sentence of 3-25 words; pass beats fail, else a tie")
    judge = ScoreJudge(lambda prompts, answers: [one_short_sentence("", a) for a in answers], "one-short-sentence rule")
    outcome = evaluate_win_rate(result.run_dir, judge, prompts=questions, max_new_tokens=40)
    samples = json.loads((result.run_dir / "winrate.json").read_text())["samples"]
    table = Table(title="held-out answers", show_lines=True)
    for column in ("question", "reference (base)", "DPO policy"):
        table.add_column(column, overflow="fold")
    for sample in samples[:4]:
        table.add_row(sample["prompt"][-1]["content"], sample["reference"][:160], sample["policy"][:160])
    console.print(table)
    console.print(f"[bold]{outcome.summary()}[/]")
    console.print("[dim]a rule checks form, not truth: read the samples, as with any judge[/]")
    console.print(f"run directory: {result.run_dir}   total time: {time.monotonic() - started:.0f} s")
    return 0 if outcome.ci_low > 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
