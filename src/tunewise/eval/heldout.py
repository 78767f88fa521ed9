"""Held-out records: reading them, masking everything but the assistant's tokens, and scoring loss.

Loss counts only what the model is trained to produce, with the data stage's own masking
(`tunewise.data.templating.tokenize_record`: the chat template rendered incrementally, labels on
each answer and the end-of-turn token that closes it), so validation loss here and in training agree.
Preference records are scored on their chosen (or desirable) answer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.eval.errors import EvalError

IGNORE = -100  # label value cross-entropy skips


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE outside scored tokens


def read_records(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The first `limit` records of a normalized JSONL file ({"messages": [...]}, {"text": ...} or {"segments": [...]})."""
    if not path.is_file():
        raise EvalError(f"{path}: held-out data not found", hint="the data stage writes <run>/data/validation.jsonl")
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise EvalError(f"{path}:{line_no}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise EvalError(f"{path}:{line_no}: expected a JSON object")
            try:
                record = as_scored_record(record)
            except EvalError as err:
                raise EvalError(f"{path}:{line_no}: {err.message}") from None
            if record is None:
                continue
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    return records


def as_scored_record(record: dict[str, Any]) -> dict[str, Any] | None:
    """Conversation or text records as they are; preference records as prompt + preferred answer;
    None for an undesirable (KTO label false) completion, which is no reference answer."""
    if "messages" in record or "text" in record or "segments" in record:
        return record
    tools = record.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools  # alignment rows hold them as JSON text
    extra = {"tools": tools} if tools else {}
    if "prompt" in record and "chosen" in record:
        return {"messages": list(record["prompt"]) + list(record["chosen"]), **extra}
    if "prompt" in record and "completion" in record:
        return {"messages": list(record["prompt"]) + list(record["completion"]), **extra} if record.get("label") else None
    raise EvalError("a held-out record has none of 'messages', 'text', 'segments', or 'prompt' with 'chosen' / "
                    "'completion'")


def prompt_and_reference(record: dict[str, Any]) -> tuple[list[dict[str, str]], str] | None:
    """Conversation up to the last assistant turn, and that turn's text; None for raw-text records."""
    from tunewise.data.chat_view import text_view

    messages = record.get("messages")
    if not messages or messages[-1].get("role") != "assistant":
        return None
    messages = text_view(messages, record.get("tools"))  # tool calls and results as text, in both prompt and reference
    prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]  # drop training-only keys
    return prompt, messages[-1]["content"]


def encode_record(tokenizer: Any, record: dict[str, Any], max_length: int) -> Encoded:
    """Token ids and labels exactly as training builds them (tunewise.data's `tokenize_record`):
    assistant answers and their end-of-turn token for conversations, every token for text."""
    from tunewise.data.templating import tokenize_record

    example = tokenize_record(tokenizer, record)
    return Encoded(example["input_ids"][:max_length], example["labels"][:max_length])


def score_loss(model: Any, tokenizer: Any, encoded: list[Encoded], *, batch_size: int = 8) -> tuple[float, int]:
    """(sum of token negative log-likelihoods in nats, number of scored tokens)."""
    import torch

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_nll, total_tokens = 0.0, 0
    usable = [e for e in encoded if any(label != IGNORE for label in e.labels[1:])]
    for start in range(0, len(usable), batch_size):
        chunk = usable[start : start + batch_size]
        width = max(len(e.input_ids) for e in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, item in enumerate(chunk):
            n = len(item.input_ids)
            ids[row, :n] = torch.tensor(item.input_ids)
            labels[row, :n] = torch.tensor(item.labels)
            mask[row, :n] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
        nll = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
            ignore_index=IGNORE, reduction="sum",
        )
        total_nll += float(nll)
        total_tokens += int((shift_labels != IGNORE).sum())
    return total_nll, total_tokens


def loss_and_perplexity(model: Any, tokenizer: Any, encoded: list[Encoded], *, batch_size: int = 8) -> tuple[float | None, float | None]:
    """Mean token loss (nats) and its perplexity; (None, None) when nothing is scored."""
    nll, tokens = score_loss(model, tokenizer, encoded, batch_size=batch_size)
    if tokens == 0:
        return None, None
    loss = nll / tokens
    return loss, math.exp(min(loss, 700.0))  # exp overflows past ~709
