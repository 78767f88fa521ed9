"""Alignment data through the data pipeline: preference pairs, unpaired (KTO) rows, or prompts only.

`tunewise.data.prepare_data` validates, deduplicates and splits the file exactly as for SFT (every
problem named by file:line and field); this module checks that the rows suit the method and turns
the normalized records into the conversational rows TRL expects.

Tools reach TRL as they reach supervised training (tunewise.data.chat_view): when the chat template
renders tools and the trainer passes a row's `tools` column to it (DPO, KTO, reward), messages keep
their tool calls and the schemas ride along as JSON text; otherwise tools, calls and results are
written into the messages as tunewise's text. Rows with tool calls become a `datasets.Dataset` with
messages stored as JSON, so Arrow never merges the argument objects of different calls into one schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tunewise.data.chat_view import template_renders_tools, text_view
from tunewise.errors import DataError

Need = Literal["paired", "paired_or_unpaired", "prompts"]

_SHAPES = {
    "paired": "preference pairs (prompt/chosen/rejected)",
    "unpaired": "unpaired preference rows (prompt/completion/label)",
}


@dataclass
class AlignData:
    """Rows in TRL's conversational format, plus the data report from the pipeline.

    paired:   {"prompt": [messages], "chosen": [messages], "rejected": [messages]}
    unpaired: {"prompt": [messages], "completion": [messages], "label": bool}
    prompts:  {"prompt": [messages]}
    """

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    shape: str  # paired | unpaired | prompts
    report: Any


_TEMPLATE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Per-message training weights mean nothing to a preference loss; TRL wants what the template reads.
    return [{k: m[k] for k in _TEMPLATE_KEYS if k in m} for m in messages]


def preference_row(record: dict[str, Any], *, native_tools: bool) -> dict[str, Any]:
    """A normalized preference record as TRL's conversational row (see the module docstring for tools)."""
    tools = record.get("tools")
    answers = [k for k in ("chosen", "rejected", "completion") if k in record]
    if native_tools:
        row = {"prompt": _plain(record["prompt"]), **{k: _plain(record[k]) for k in answers}}
        if tools:
            row["tools"] = json.dumps(tools)
    else:
        row = {"prompt": _plain(text_view(record["prompt"], tools)),
               **{k: _plain(text_view(record[k], None)) for k in answers}}
    if "label" in record:
        row["label"] = bool(record["label"])
    return row


def prompt_of(record: dict[str, Any]) -> list[dict[str, str]] | None:
    """The prompt of a prompt or preference row, or a conversation's messages up to its last user turn.

    Samplers take plain messages, so tools and tool calls in it are written as tunewise's text."""
    tools = row_tool_list(record)
    if "prompt" in record:
        return _plain(text_view(record["prompt"], tools))
    messages = record.get("messages")
    if not messages:
        return None
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    return None if last_user is None else _plain(text_view(messages[: last_user + 1], tools))


def row_tool_list(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A row's tools: a list in normalized records, JSON text in TRL rows (data/validation.jsonl)."""
    tools = row.get("tools")
    return json.loads(tools) if isinstance(tools, str) else tools


def _unique_prompts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, rows = set(), []
    for record in records:
        prompt = prompt_of(record)
        key = json.dumps(prompt)
        if prompt and key not in seen:
            seen.add(key)
            rows.append({"prompt": prompt})
    return rows


def _shape_error(method: str, need: Need, found: str, file: str) -> DataError:
    wanted = {
        "paired": _SHAPES["paired"],
        "paired_or_unpaired": f"{_SHAPES['paired']} or {_SHAPES['unpaired']}",
        "prompts": "prompts: prompt-only rows, preference rows or chat conversations",
    }[need]
    hint = {
        "unpaired": "unpaired rows (a label per completion) train with method kto",
        "prompt": "prompt-only rows train with ppo or grpo, which sample and score their own answers",
        "conversation": "chat data trains with an SFT method (lora, full, ...); ppo and grpo take its prompts",
        "text": "plain text has no prompts or answers to prefer",
    }.get(found)
    return DataError(f"{file}: method {method} needs {wanted}, but the file holds {found} rows", hint=hint)


def load_align_data(spec: Any, tokenizer: Any, method: str, need: Need, *, row_tools: bool = True) -> AlignData:
    """Validate and split `spec.data` with the data pipeline and shape it for `method`.

    Args:
        spec: the JobSpec (data section and train.seed are used).
        tokenizer: the base model's tokenizer (token lengths and the max_length check).
        method: the method name, for messages.
        need: "paired" (dpo, orpo, reward), "paired_or_unpaired" (kto), "prompts" (ppo, grpo: prompt-only
            rows, or the prompts of preference rows and conversations).
        row_tools: the method's TRL trainer hands each row's `tools` column to the chat template
            (DPO, KTO and reward do; ORPO does not, so its tools are written as text).
    Raises DataError naming file:line for invalid rows, or the mismatch between data and method.
    """
    from tunewise.data import prepare_data

    prepared = prepare_data(spec.data, tokenizer, seed=spec.train.seed, tokenize=False)
    file = str(spec.data.train)
    if need == "prompts":
        if prepared.kind == "text":
            raise _shape_error(method, need, "text", file)
        train, validation = _unique_prompts(prepared.train), _unique_prompts(prepared.validation)
        if not train:
            raise DataError(f"{file}: no prompts found (rows need a prompt, or a user turn in messages)")
        return AlignData(train, validation, "prompts", prepared.report)
    if prepared.kind != "preference":
        raise _shape_error(method, need, prepared.kind, file)
    shape = getattr(prepared.report, "preference_kind", None) or ("paired" if "chosen" in prepared.train[0] else "unpaired")
    if need == "paired" and shape != "paired":
        raise _shape_error(method, need, shape, file)
    native = row_tools and template_renders_tools(tokenizer)
    return AlignData([preference_row(r, native_tools=native) for r in prepared.train],
                     [preference_row(r, native_tools=native) for r in prepared.validation], shape, prepared.report)


def unpair(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pairs -> KTO rows: each chosen answer a desirable example, each rejected one undesirable."""
    out = []
    for row in rows:
        if "chosen" not in row:
            out.append(row)
            continue
        extra = {"tools": row["tools"]} if "tools" in row else {}
        out.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True, **extra})
        out.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False, **extra})
    return out


_MESSAGE_COLUMNS = ("prompt", "chosen", "rejected", "completion")


def to_dataset(rows: list[dict[str, Any]]) -> Any:
    """A `datasets.Dataset` of TRL rows.

    Rows whose messages carry tool calls (tools rendered by the template) store their message
    columns as JSON: Arrow would otherwise merge the argument objects of all calls into one struct
    and hand every call the other calls' argument names as nulls. Plain rows keep Arrow's own
    types, which trainers that rewrite those columns in place (ORPO renders them to text) need.
    """
    from datasets import Dataset, Features, Json, List, Value

    calls = any(m.get("tool_calls") for row in rows for k in _MESSAGE_COLUMNS for m in row.get(k) or [])
    if not calls:
        return Dataset.from_list(rows)
    types = {"label": Value("bool"), "tools": Value("string")}
    features = Features({k: List(Json()) if k in _MESSAGE_COLUMNS else types[k] for k in rows[0]})
    return Dataset.from_list(rows, features=features)


HELD_OUT_FILES = ("validation.jsonl", "prompts.jsonl")


def write_data_files(run_dir: Path, data: AlignData) -> None:
    """data_report.json and the held-out rows win-rate draws its prompts from: data/validation.jsonl
    for preference rows (the eval stage scores them too), data/prompts.jsonl for prompts only
    (PPO, GRPO: there is no reference answer to score)."""
    (run_dir / "data_report.json").write_text(json.dumps(data.report.to_dict(), indent=2, default=str))
    folder = run_dir / "data"
    folder.mkdir(exist_ok=True)
    name = HELD_OUT_FILES[1] if data.shape == "prompts" else HELD_OUT_FILES[0]
    with (folder / name).open("w", encoding="utf-8") as fh:
        for row in data.validation:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
