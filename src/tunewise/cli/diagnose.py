"""`tunewise diagnose`: RAG or fine-tune? Closed-book answers against answers with the documents."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from tunewise.cli import _panels
from tunewise.spec import BUNDLED_MODEL


class Need(str, Enum):
    knowledge = "knowledge"
    behaviour = "behaviour"


class Changes(str, Enum):
    static = "static"
    monthly = "monthly"
    weekly = "weekly"
    daily = "daily"


def diagnose_command(
    questions: Path = typer.Option(..., "--questions", help="JSONL: question, answer (string or list), optional context."),
    docs: Path = typer.Option(..., "--docs", help="Directory of .txt/.md files, or JSONL with a `text` field."),
    model: str = typer.Option(BUNDLED_MODEL, "--model", help="Base model to question."),
    need: Need = typer.Option(Need.knowledge, "--need", help="Is the gap knowledge (facts) or behaviour (style, format)?"),
    changes: Changes = typer.Option(Changes.static, "--changes", help="How often the knowledge changes."),
    rare_entities: bool = typer.Option(False, "--rare-entities", help="The questions are about rare, little-known entities."),
    provenance: bool = typer.Option(False, "--provenance", help="Answers must cite their sources."),
    top_k: int = typer.Option(3, "--top-k", min=1, help="Passages retrieved per question (BM25)."),
    max_new_tokens: int = typer.Option(24, "--max-new-tokens", min=1, help="Longest answer generated."),
    as_json: bool = typer.Option(False, "--json", help="Print the diagnosis as JSON."),
) -> None:
    """Ask the base model each question closed-book, with BM25-retrieved passages and with the gold
    passage; if the documents fix the answers, the failure is retrieval: recommend RAG, not a fine-tune."""
    from tunewise.cli._common import console, print_json
    from tunewise.plan.diagnose import run_diagnosis
    from tunewise.plan.render import render_diagnosis

    diagnosis = run_diagnosis(questions, docs, model=model, top_k=top_k, need=need.value, changes=changes.value,
                              rare_entities=rare_entities, provenance=provenance, max_new_tokens=max_new_tokens)
    if as_json:
        print_json(diagnosis.to_json())
    else:
        render_diagnosis(diagnosis, console)


def register(app: typer.Typer) -> None:
    app.command("diagnose", rich_help_panel=_panels.PLAN)(diagnose_command)
