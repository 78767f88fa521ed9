"""Chat templating, tokenization and the loss mask.

Conversations go through the tokenizer's own chat template, the same one `render_prompt` uses
at inference, so training and generation see identical text. Labels are -100 except on assistant
answers: the answer text plus the end-of-turn token that closes it (so the model learns to stop).

How answers are located: the template is rendered incrementally. For assistant turn i, the prefix
up to turn i with add_generation_prompt=True must be a prefix of the rendering through turn i,
which in turn must extend the rendering through the previous assistant turn ("prefix-stable").
The answer is what the turn adds after the generation prompt, cut after the first eos token
following the answer text (or the whole addition where the template closes turns with another
marker). A template that is not prefix-stable (one that rewrites earlier turns, say) falls back to
"search": render the whole conversation once and find each message's text in order; the answer
and the eos token after it are labelled. `masking_mode` says which one a tokenizer gets.

Tools (schemas, calls, results) reach the template through `chat_view.template_view`: natively
when the template renders them, else as tunewise's text. A turn that makes tool calls is an
assistant turn and is labelled; tool results are prompt side and are not. Axolotl-style segment
records are tokenized segment by segment, with no template, labelled where their label is true.
"""

from __future__ import annotations

import warnings
from typing import Any

from tunewise.data.chat_view import template_view
from tunewise.errors import DataError

IGNORE_INDEX = -100  # label value the loss skips (transformers' default ignore_index)

_PROBE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "One?"},
    {"role": "assistant", "content": "1"},
    {"role": "user", "content": "Two?"},
    {"role": "assistant", "content": "2"},
]


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]] | str, *, tokenize: bool = False,
                  tools: list[dict[str, Any]] | None = None) -> str | list[int]:
    """The prompt for generation: the chat template with add_generation_prompt=True.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        messages: the conversation so far (ending with a user turn), or one user message as a string.
        tokenize: return token ids instead of text.
        tools: tool schemas offered to the model (normalized records' "tools").
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    messages, tools = template_view(tokenizer, messages, tools)
    text = _render(tokenizer, messages, add_generation_prompt=True, tools=tools)
    if tokenize:
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return text


def tokenize_record(tokenizer: Any, record: dict[str, Any]) -> dict[str, list[int]]:
    """Tokenize one normalized record into {"input_ids", "labels"} (no truncation).

    Conversations: labels only on assistant answers (tool calls included) and their end-of-turn
    token; weight-0 turns and tool results get -100. Text: every token is labelled and eos is
    appended. Segments: each segment's tokens, labelled where its label is true, nothing added.
    Preference records raise DataError: the alignment trainer tokenizes those.
    """
    if "text" in record:
        return _tokenize_text(tokenizer, record["text"])
    if "segments" in record:
        return _tokenize_segments(tokenizer, record["segments"])
    if "messages" not in record:
        raise DataError("preference records are tokenized by the alignment trainer, not by tokenize_record")
    messages, tools = template_view(tokenizer, record["messages"], record.get("tools"))
    text, spans = _answer_spans(tokenizer, messages, tools)
    ids, offsets = _encode_with_offsets(tokenizer, text, spans)
    labels = [IGNORE_INDEX] * len(ids)
    span_index = 0
    for position, (start, end) in enumerate(offsets):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        if span_index == len(spans):
            break
        span_start, _span_end, weight = spans[span_index]
        if weight and end > span_start:  # any overlap: a token merging prompt and answer text is generated
            labels[position] = ids[position]
    return {"input_ids": ids, "labels": labels}


def truncate_example(example: dict[str, list[int]], max_length: int) -> dict[str, list[int]] | None:
    """Keep the first `max_length` tokens (ids and labels cut together); None if no label survives."""
    ids, labels = example["input_ids"][:max_length], example["labels"][:max_length]
    if all(label == IGNORE_INDEX for label in labels[1:]):  # position 0 is never predicted
        return None
    return {"input_ids": ids, "labels": labels}


def masking_mode(tokenizer: Any) -> str:
    """"incremental" when the chat template is prefix-stable, else "search" (see module docstring)."""
    for probe in (_PROBE, _PROBE[1:]):  # some templates refuse a system turn
        try:
            return "incremental" if _incremental_spans(tokenizer, probe) is not None else "search"
        except DataError:
            continue
    return "unknown (the template rejects a plain user/assistant conversation)"


def require_chat_template(tokenizer: Any) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(
            "the tokenizer has no chat template, so conversations cannot be formatted",
            hint="use an instruct/chat model, set tokenizer.chat_template, or train on format text",
        )


# --- internals -----------------------------------------------------------------------------------


def _render(tokenizer: Any, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
            tools: list[dict[str, Any]] | None = None) -> str:
    require_chat_template(tokenizer)
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in messages]  # templates need no weights
    try:
        extra = {"tools": tools} if tools else {}
        return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt, **extra)
    except Exception as err:  # jinja raises its own exceptions (e.g. raise_exception in the template)
        raise DataError(f"the chat template rejected this conversation: {err}") from None


def _tokenize_text(tokenizer: Any, text: str) -> dict[str, list[int]]:
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    return {"input_ids": ids, "labels": list(ids)}


def _tokenize_segments(tokenizer: Any, segments: list[dict[str, Any]]) -> dict[str, list[int]]:
    ids: list[int] = []
    labels: list[int] = []
    for segment in segments:
        piece = list(tokenizer(segment["text"], add_special_tokens=False)["input_ids"])
        ids.extend(piece)
        labels.extend(piece if segment["label"] else [IGNORE_INDEX] * len(piece))
    return {"input_ids": ids, "labels": labels}


def _answer_end(text: str, start: int, content: str, eos: str | None, limit: int) -> int:
    """End of the labelled answer that starts at `start`: through the first eos after its text."""
    found = text.find(content, start, limit)
    after = found + len(content) if found >= 0 else start
    if eos:
        eos_at = text.find(eos, after, limit)
        if eos_at >= 0:
            return eos_at + len(eos)
    return limit


def _incremental_spans(tokenizer: Any, messages: list[dict[str, Any]],
                       tools: list[dict[str, Any]] | None = None) -> tuple[str, list[tuple[int, int, int]]] | None:
    eos = tokenizer.eos_token
    spans: list[tuple[int, int, int]] = []
    previous = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], add_generation_prompt=True, tools=tools)
        through = _render(tokenizer, messages[: i + 1], add_generation_prompt=False, tools=tools)
        if not prompt.startswith(previous) or not through.startswith(prompt):
            return None
        end = _answer_end(through, len(prompt), message["content"], eos, len(through))
        spans.append((len(prompt), end, message.get("weight", 1)))
        previous = through
    return previous, spans


_warned_search: set[int] = set()


def _search_spans(tokenizer: Any, messages: list[dict[str, Any]],
                  tools: list[dict[str, Any]] | None = None) -> tuple[str, list[tuple[int, int, int]]]:
    if id(tokenizer) not in _warned_search:
        _warned_search.add(id(tokenizer))
        warnings.warn("chat template is not prefix-stable; locating answers by text search", stacklevel=3)
    text = _render(tokenizer, messages, add_generation_prompt=False, tools=tools)
    spans: list[tuple[int, int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        found = text.find(message["content"], cursor)
        if found < 0:
            if message["role"] != "assistant":
                continue  # a template may rewrite or drop system text; answers are what matter
            raise DataError(f"messages[{i}]: the chat template changed this answer's text, so it cannot be masked")
        cursor = found + len(message["content"])
        if message["role"] == "assistant":
            next_start = len(text)
            end = _answer_end(text, found, message["content"], tokenizer.eos_token, next_start)
            spans.append((found, end, message.get("weight", 1)))
            cursor = end
    return text, spans


def _answer_spans(tokenizer: Any, messages: list[dict[str, Any]],
                  tools: list[dict[str, Any]] | None = None) -> tuple[str, list[tuple[int, int, int]]]:
    """Rendered conversation and (start, end, weight) character spans of the assistant answers."""
    found = _incremental_spans(tokenizer, messages, tools)
    return found if found is not None else _search_spans(tokenizer, messages, tools)


def _encode_with_offsets(tokenizer: Any, text: str, spans: list[tuple[int, int, int]]) -> tuple[list[int], list[tuple[int, int]]]:
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
    # Slow tokenizers have no offsets: tokenize each piece between span edges on its own.
    edges = sorted({0, len(text), *(p for s in spans for p in s[:2])})
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    for start, end in zip(edges, edges[1:]):
        piece = tokenizer(text[start:end], add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        offsets.extend([(start, end)] * len(piece))
    return ids, offsets
