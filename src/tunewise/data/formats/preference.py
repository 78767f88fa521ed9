"""Preference data for DPO-style (paired) and KTO-style (unpaired) alignment, from every source shape.

Paired:   -> {"prompt": [messages], "chosen": [assistant], "rejected": [assistant], "tools"?: [...]}
Unpaired: -> {"prompt": [messages], "completion": [assistant], "label": bool, "tools"?: [...]}

TRL's own shapes are read here; OpenAI's and LLaMA-Factory's in _preference_sources. The prompt is
a string (one user turn) or a message list ending with a user turn; answers are a string or a list
of assistant messages. These records are tokenized by the alignment trainer, so this module only
validates and normalizes. One file holds one kind; `record_kind` tells them apart.
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, Variant, register
from tunewise.data.formats import _preference_sources as sources
from tunewise.data.formats._messages import OPENAI, message_list, require
from tunewise.data.formats._pairs import (
    answer_messages,
    label_value,
    paired,
    prompt_messages,
    record_kind,
    split_implicit,
    unpaired,
)
from tunewise.data.formats._tools import row_tools
from tunewise.data.problems import FieldError

__all__ = ["FORMAT", "prompt_messages", "record_kind"]


def _trl_pair(row: dict[str, Any]) -> dict[str, Any]:
    prompt = prompt_messages(require(row, "prompt"))
    chosen = answer_messages(require(row, "chosen"), "chosen")
    rejected = answer_messages(require(row, "rejected"), "rejected")
    return paired(prompt, chosen, rejected, row_tools(row))


def _trl_implicit(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("chosen", "rejected"):
        if isinstance(row.get(key), str):
            raise FieldError(key, "an implicit prompt needs whole conversations (message lists) in chosen and "
                             "rejected; for text answers add the prompt key")
    chosen = message_list(require(row, "chosen"), "chosen", OPENAI)
    rejected = message_list(require(row, "rejected"), "rejected", OPENAI)
    prompt, chosen, rejected = split_implicit(chosen, rejected, "chosen", "rejected")
    return paired(prompt, chosen, rejected, row_tools(row))


def _trl_unpaired(row: dict[str, Any]) -> dict[str, Any]:
    prompt = prompt_messages(require(row, "prompt"))
    label = label_value(row)
    return unpaired(prompt, answer_messages(require(row, "completion"), "completion"), label, row_tools(row))


_TOOLS = "tool schemas, rendered into the prompt"
_PAIR_FIELDS = {"chosen": "the preferred answer (a string or assistant messages)",
                "rejected": "the other answer to the same prompt"}
_KTO_LABEL = "true: a desirable answer, false: an undesirable one (KTO)"
_LF_EXTRA = {"system": "the system turn", "tools": _TOOLS}

VARIANTS = (
    Variant("trl", "TRL, tunewise", ("prompt", "chosen", "rejected"), _trl_pair, {
        "prompt": "a string (one user turn) or messages ending with a user turn", **_PAIR_FIELDS, "tools": _TOOLS,
    }, "paired", example={"prompt": "Say hi", "chosen": "Hi there!", "rejected": "No."}),
    Variant("trl implicit prompt", "TRL", ("chosen", "rejected"), _trl_implicit, {
        "chosen": "a whole conversation; the messages it shares with rejected from the start are the prompt, "
                  "the rest the preferred answer",
        "rejected": "a whole conversation; after the shared prompt, the other answer",
        "tools": _TOOLS,
    }, "paired", example={
        "chosen": [{"role": "user", "content": "Sky color?"}, {"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "user", "content": "Sky color?"}, {"role": "assistant", "content": "Green."}]}),
    Variant("openai", "OpenAI (method: dpo)", ("input", "preferred_output", "non_preferred_output"), sources.openai_pair, {
        "input.messages": "the prompt: messages ending with a user turn (or tool results)",
        "input.tools": _TOOLS,
        "preferred_output": "chosen: the preferred assistant message(s)",
        "non_preferred_output": "rejected: the other assistant message(s)",
    }, "paired", dropped={"input.parallel_tool_calls": "an inference setting; each answer's calls are trained as written"},
        example={"input": {"messages": [{"role": "user", "content": "Say hi"}]},
                 "preferred_output": [{"role": "assistant", "content": "Hi there!"}],
                 "non_preferred_output": [{"role": "assistant", "content": "No."}]}),
    Variant("llama-factory sharegpt", "LLaMA-Factory", ("conversations", "chosen", "rejected"), sources.sharegpt_pair, {
        "conversations": "the prompt: {from, value} turns ending with a human turn",
        "chosen": "the preferred answer: one {from: gpt, value} message",
        "rejected": "the other answer: one {from: gpt, value} message", **_LF_EXTRA,
    }, "paired", example={"conversations": [{"from": "human", "value": "Say hi"}],
                          "chosen": {"from": "gpt", "value": "Hi there!"}, "rejected": {"from": "gpt", "value": "No."}}),
    Variant("llama-factory alpaca", "LLaMA-Factory", ("instruction", "chosen", "rejected"), sources.alpaca_pair, {
        "instruction": "the user turn", "input": 'appended to the user turn after "\\n\\n"', **_PAIR_FIELDS,
        "system": "the system turn", "history": "earlier [instruction, response] pairs, in the prompt",
    }, "paired", example={"instruction": "Say hi", "chosen": "Hi there!", "rejected": "No."}),
    Variant("llama-factory v1", "LLaMA-Factory (v1)", ("chosen_messages", "rejected_messages"), sources.v1_pair, {
        "chosen_messages": "a whole conversation (v1 messages); the part shared with rejected_messages is the "
                           "prompt, the rest the preferred answer (trained whole: loss_weight does not apply)",
        "rejected_messages": "a whole conversation; after the shared prompt, the other answer",
        "tools": _TOOLS,
    }, "paired", dropped={"extra_info": "free-form notes beside the sample"},
        example={"chosen_messages": [{"role": "user", "content": [{"type": "text", "value": "Sky color?"}]},
                                     {"role": "assistant", "content": [{"type": "text", "value": "Blue."}]}],
                 "rejected_messages": [{"role": "user", "content": [{"type": "text", "value": "Sky color?"}]},
                                       {"role": "assistant", "content": [{"type": "text", "value": "Green."}]}]}),
    Variant("trl unpaired", "TRL, tunewise", ("prompt", "completion", "label"), _trl_unpaired, {
        "prompt": "a string (one user turn) or messages ending with a user turn",
        "completion": "the answer (a string or assistant messages)", "label": _KTO_LABEL, "tools": _TOOLS,
    }, "unpaired", example={"prompt": "Say hi", "completion": "No.", "label": False}),
    Variant("llama-factory kto", "LLaMA-Factory", ("messages", "label"), sources.kto_messages, {
        "messages": "the prompt, then the answer: the final assistant turn(s)",
        "label": _KTO_LABEL, "kto_tag": _KTO_LABEL, **_LF_EXTRA,
    }, "unpaired", also=(("messages", "kto_tag"),),
        example={"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "No."}],
                 "label": False}),
    Variant("llama-factory kto sharegpt", "LLaMA-Factory", ("conversations", "label"), sources.kto_sharegpt, {
        "conversations": "the prompt, then the answer: the final gpt turn(s)",
        "label": _KTO_LABEL, "kto_tag": _KTO_LABEL, **_LF_EXTRA,
    }, "unpaired", also=(("conversations", "kto_tag"),),
        example={"conversations": [{"from": "human", "value": "Say hi"}, {"from": "gpt", "value": "No."}],
                 "kto_tag": False}),
    Variant("llama-factory kto alpaca", "LLaMA-Factory", ("instruction", "output", "kto_tag"), sources.kto_alpaca, {
        "instruction": "the user turn", "input": 'appended to the user turn after "\\n\\n"', "output": "the answer",
        "kto_tag": _KTO_LABEL, "label": _KTO_LABEL, "system": "the system turn",
        "history": "earlier [instruction, response] pairs, in the prompt",
    }, "unpaired", example={"instruction": "Say hi", "output": "No.", "kto_tag": False}),
)

FORMAT = register(RowFormat(
    name="preference",
    kind="preference",
    priority=2,
    description="preference pairs (DPO, ORPO, reward) or labelled answers (KTO), in TRL's, OpenAI's and "
                "LLaMA-Factory's shapes",
    variants=VARIANTS,
))
