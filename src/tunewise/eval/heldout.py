"""Held-out records: reading them, masking everything but the assistant's tokens, and scoring loss.

Loss counts only what the model is trained to produce. The chat template is rendered
incrementally: the text up to a generation prompt (`add_generation_prompt=True`) and the text
through the assistant's turn differ by exactly that turn, end-of-turn token included.
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
    """The first `limit` records of a normalized JSONL file ({"messages": [...]} or {"text": ...})."""
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
            if not isinstance(record, dict) or not ("messages" in record or "text" in record):
                raise EvalError(f"{path}:{line_no}: expected a record with 'messages' or 'text'")
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    return records


def prompt_and_reference(record: dict[str, Any]) -> tuple[list[dict[str, str]], str] | None:
    """Conversation up to the last assistant turn, and that turn's text; None for raw-text records."""
    messages = record.get("messages")
    if not messages or messages[-1].get("role") != "assistant":
        return None
    return [{"role": m["role"], "content": m["content"]} for m in messages[:-1]], messages[-1]["content"]


def encode_record(tokenizer: Any, record: dict[str, Any], max_length: int) -> Encoded:
    """Token ids and labels: assistant turns for chat records, every token for text records."""
    if "messages" not in record:
        ids = tokenizer(record["text"], add_special_tokens=True)["input_ids"][:max_length]
        return Encoded(ids, list(ids))
    segments = _chat_segments(tokenizer, record["messages"])
    ids: list[int] = []
    labels: list[int] = []
    for text, scored in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        labels.extend(piece if scored else [IGNORE] * len(piece))
    return Encoded(ids[:max_length], labels[:max_length])


def _chat_segments(tokenizer: Any, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not prefix.startswith(done) or not through.startswith(prefix):
            raise EvalError(
                "the chat template does not render conversations incrementally, so assistant tokens cannot be isolated",
                hint="use a template whose rendering of a prefix is a prefix of the full rendering",
            )
        segments += [(prefix[len(done):], False), (through[len(prefix):], True)]
        done = through
    return segments


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
