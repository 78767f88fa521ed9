"""Building blocks of the preference variants: prompts, answers, labels, and the two record shapes.

Paired:   {"prompt": [messages], "chosen": [assistant messages], "rejected": [...], "tools"?: [...]}
Unpaired: {"prompt": [messages], "completion": [assistant messages], "label": bool, "tools"?: [...]}
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats._messages import OPENAI, Dialect, check_turn_order, message_list, read_message, text_field
from tunewise.data.formats._tools import check_calls_declared
from tunewise.data.problems import FieldError
from tunewise.data.readers import json_type_name

_BOOL_STRINGS = {"true": True, "false": False}  # CSV cells carry booleans as text
LABEL_KEYS = ("label", "kto_tag")  # TRL and LLaMA-Factory's demo files say label; LLaMA-Factory's docs say kto_tag


def record_kind(record: dict[str, Any]) -> str:
    """"paired" (chosen/rejected) or "unpaired" (completion/label)."""
    return "paired" if "chosen" in record else "unpaired"


def prompt_messages(value: Any, field: str = "prompt", dialect: Dialect = OPENAI) -> list[dict[str, Any]]:
    """A prompt as messages: a string is one user turn; a message list must end with a user (or tool) turn."""
    if isinstance(value, str):
        return [{"role": "user", "content": text_field(value, field)}]
    messages = message_list(value, field, dialect)
    check_turn_order(messages, field, last="user", dialect=dialect)
    return messages


def answer_messages(value: Any, field: str, dialect: Dialect = OPENAI) -> list[dict[str, Any]]:
    """An answer: a string, one message object (LLaMA-Factory's ShareGPT pairs) or a list of assistant messages.

    Tool results cannot sit inside an answer: the whole answer is trained, and a tool's output is
    not the model's to write.
    """
    if isinstance(value, str):
        return [{"role": "assistant", "content": text_field(value, field)}]
    if isinstance(value, dict):
        messages, where = [read_message(value, field, dialect)], [field]
    else:
        messages = message_list(value, field, dialect)
        where = [f"{field}[{i}]" for i in range(len(messages))]
    for message, place in zip(messages, where):
        if message["role"] != "assistant":
            raise FieldError(f"{place}.{dialect.role_key}", f"answers hold {dialect.shown('assistant')} messages only, "
                             f"got {dialect.shown(message['role'])!r}")
        message.pop("weight", None)  # a preference loss trains the whole answer; a weight would mean nothing here
    return messages


def label_value(row: dict[str, Any]) -> bool:
    """The KTO label under label or kto_tag: true (desirable) or false (undesirable)."""
    given = [key for key in LABEL_KEYS if row.get(key) is not None]
    if not given:
        raise FieldError("label", "missing key 'label'")
    values = {key: _bool(row[key], key) for key in given}
    if len(set(values.values())) > 1:
        raise FieldError("kto_tag", "label and kto_tag disagree")
    return values[given[0]]


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, str) and value.strip().lower() in _BOOL_STRINGS:
        return _BOOL_STRINGS[value.strip().lower()]
    if not isinstance(value, bool):
        raise FieldError(field, f"expected true or false, got a JSON {json_type_name(value)}")
    return value


def paired(prompt: list[dict[str, Any]], chosen: list[dict[str, Any]], rejected: list[dict[str, Any]],
           tools: list[dict[str, Any]], fields: tuple[str, str] = ("chosen", "rejected")) -> dict[str, Any]:
    if chosen == rejected:
        raise FieldError(fields[1], f"is identical to {fields[0]}; the pair teaches nothing")
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        check_calls_declared(prompt + answer, tools, f"prompt + {name}")
    record = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    return {**record, "tools": tools} if tools else record


def unpaired(prompt: list[dict[str, Any]], completion: list[dict[str, Any]], label: bool,
             tools: list[dict[str, Any]]) -> dict[str, Any]:
    check_calls_declared(prompt + completion, tools, "prompt + completion")
    record = {"prompt": prompt, "completion": completion, "label": label}
    return {**record, "tools": tools} if tools else record


def split_conversation(messages: list[dict[str, Any]], field: str,
                       dialect: Dialect = OPENAI) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A whole conversation -> (prompt, answer): the answer is its final run of assistant turns
    (tool calls and their results before it stay in the prompt)."""
    start = len(messages)
    while start > 0 and messages[start - 1]["role"] == "assistant":
        start -= 1
    if start == len(messages):
        raise FieldError(f"{field}[{len(messages) - 1}].{dialect.role_key}", "the conversation must end with the answer, "
                         f"a turn by {dialect.shown('assistant')!r}, got {dialect.shown(messages[-1]['role'])!r}")
    if start == 0:
        raise FieldError(field, "has no prompt before the answer")
    prompt = messages[:start]
    check_turn_order(prompt, field, last="user", dialect=dialect)
    return prompt, messages[start:]


def split_implicit(chosen: list[dict[str, Any]], rejected: list[dict[str, Any]], chosen_field: str,
                   rejected_field: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """TRL's implicit prompt: the messages chosen and rejected share from the start are the prompt.

    The rest of each is its answer; the prompt must end with a user (or tool) turn, so a pair whose
    conversations differ earlier, or not at all, is refused with the place where they part.
    """
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == len(chosen) == len(rejected):
        raise FieldError(rejected_field, f"is identical to {chosen_field}; the pair teaches nothing")
    if shared == 0:
        raise FieldError(chosen_field, f"{chosen_field} and {rejected_field} share no prompt: they differ from their "
                         "first message (an implicit prompt is the messages both start with)")
    prompt = chosen[:shared]
    if prompt[-1]["role"] not in ("user", "tool"):
        raise FieldError(f"{chosen_field}[{shared}]", f"{chosen_field} and {rejected_field} part after a turn by "
                         f"{prompt[-1]['role']!r}; the shared prompt must end with a user turn")
    check_turn_order(prompt, chosen_field, last="user")
    answers = []
    for field, messages in ((chosen_field, chosen), (rejected_field, rejected)):
        answer = messages[shared:]
        if not answer:
            raise FieldError(field, "holds only the shared prompt, no answer")
        for i, message in enumerate(answer, start=shared):
            if message["role"] != "assistant":
                raise FieldError(f"{field}[{i}].role",
                                 f"after the shared prompt come assistant turns only, got {message['role']!r}")
            message.pop("weight", None)
        answers.append(answer)
    return prompt, answers[0], answers[1]
