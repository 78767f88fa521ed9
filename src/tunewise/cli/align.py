"""`tunewise synthesize-preferences` (AI feedback) and `tunewise winrate` (policy vs reference)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli import _panels
from tunewise.cli._common import console, print_json

JUDGE_HELP = "Judge: exactly one of --judge, --judge-url (+ --judge-model), --judge-fn, --judge-reward-model."


def _judge(judge: str | None, judge_url: str | None, judge_model: str | None, judge_key: str | None,
           judge_fn: str | None, judge_reward_model: str | None, judge_template: Path | None):
    from tunewise.align.judges import make_judge

    return make_judge(model=judge, url=judge_url, endpoint_model=judge_model, key=judge_key, function=judge_fn,
                      reward_model=judge_reward_model, template=str(judge_template) if judge_template else None)


def synthesize_preferences(
    prompts: Path = typer.Option(..., "--prompts", help="Prompts: .txt (one per line) or rows with prompt/messages."),
    out: Path = typer.Option(..., "--out", help="Preference file to write (.jsonl)."),
    policy: str = typer.Option("smollm2-135m-instruct", "--policy", help="Model answering: bundled name, run or model dir."),
    samples: int = typer.Option(2, "--samples", min=2, help="Answers sampled per prompt; the best and worst form the pair."),
    temperature: float = typer.Option(0.9, "--temperature", help="Sampling temperature (> 0)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Longest answer in tokens."),
    seed: int = typer.Option(0, "--seed", help="Seeds sampling and the judge's answer order."),
    judge: str | None = typer.Option(None, "--judge", help="Judge model: bundled name, run or model directory."),
    judge_url: str | None = typer.Option(None, "--judge-url", help="OpenAI-compatible endpoint base URL."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="Model name the endpoint serves."),
    judge_key: str | None = typer.Option(None, "--judge-key", envvar="TUNEWISE_JUDGE_KEY",
                                         help="Endpoint API key (or set TUNEWISE_JUDGE_KEY)."),
    judge_fn: str | None = typer.Option(None, "--judge-fn", help="Scoring rule module:function, score(prompt, answer)."),
    judge_reward_model: str | None = typer.Option(None, "--judge-reward-model", help="A trained reward run."),
    judge_template: Path | None = typer.Option(None, "--judge-template",
                                               help="Judge prompt with {prompt} {answer_a} {answer_b}."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary."),
) -> None:
    """Sample answers from a policy and let a judge pick the better one: a preference dataset (RLAIF)."""
    from tunewise.align.synthesize import synthesize_preferences as synthesize

    chosen_judge = _judge(judge, judge_url, judge_model, judge_key, judge_fn, judge_reward_model, judge_template)
    report = synthesize(prompts, out, chosen_judge, policy=policy, samples=samples, temperature=temperature,
                        max_new_tokens=max_new_tokens, seed=seed)
    if as_json:
        print_json(report.to_dict())
        return
    console.print(f"[green]wrote[/] {report.pairs} preference pairs from {report.prompts} prompts to {out} "
                  f"(judge: {report.judge}; skipped {report.skipped_identical} with identical answers, "
                  f"{report.skipped_ties} ties)")


def winrate(
    run: str = typer.Argument(..., help="Run directory or name."),
    prompts: Path | None = typer.Option(None, "--prompts", help="Prompts file; default: the run's held-out split."),
    limit: int = typer.Option(64, "--limit", min=1, help="At most this many prompts."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Longest answer in tokens."),
    seed: int = typer.Option(0, "--seed", help="Seeds the order a pairwise judge sees the answers in."),
    judge: str | None = typer.Option(None, "--judge", help="Judge model: bundled name, run or model directory."),
    judge_url: str | None = typer.Option(None, "--judge-url", help="OpenAI-compatible endpoint base URL."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="Model name the endpoint serves."),
    judge_key: str | None = typer.Option(None, "--judge-key", envvar="TUNEWISE_JUDGE_KEY",
                                         help="Endpoint API key (or set TUNEWISE_JUDGE_KEY)."),
    judge_fn: str | None = typer.Option(None, "--judge-fn", help="Scoring rule module:function, score(prompt, answer)."),
    judge_reward_model: str | None = typer.Option(None, "--judge-reward-model", help="A trained reward run."),
    judge_template: Path | None = typer.Option(None, "--judge-template",
                                               help="Judge prompt with {prompt} {answer_a} {answer_b}."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable result."),
) -> None:
    """Win-rate of a trained run against its reference on held-out prompts, with a 95% Wilson interval."""
    from tunewise.align.synthesize import read_prompts
    from tunewise.align.winrate import evaluate_win_rate

    chosen_judge = _judge(judge, judge_url, judge_model, judge_key, judge_fn, judge_reward_model, judge_template)
    result = evaluate_win_rate(run, chosen_judge, prompts=read_prompts(prompts) if prompts else None, limit=limit,
                               max_new_tokens=max_new_tokens, seed=seed)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(result.summary())
    if result.first_position_share is not None:
        console.print(f"the judge picked the first-shown answer in {result.first_position_share:.0%} of decided pairs")


def register(app: typer.Typer) -> None:
    app.command("synthesize-preferences", help=synthesize_preferences.__doc__,
                rich_help_panel=_panels.ALIGN)(synthesize_preferences)
    app.command("winrate", help=winrate.__doc__, rich_help_panel=_panels.ALIGN)(winrate)
