"""Loss masks: labels only on assistant answers and the token that ends them."""

from __future__ import annotations

import copy

import pytest

from tunewise.data import masking_mode, render_prompt, tokenize_record, truncate_example
from tunewise.errors import DataError

from ._helpers import labelled_text, labelled_token_runs

CONVERSATION = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome."},
    ]
}


def test_labels_are_the_assistant_answers_and_end_tokens(tokenizer):
    example = tokenize_record(tokenizer, CONVERSATION)
    assert len(example["input_ids"]) == len(example["labels"])
    eos = tokenizer.eos_token
    assert labelled_text(tokenizer, example) == f"Paris.{eos}Rome.{eos}"
    # The full sequence is exactly the chat template's rendering.
    rendered = tokenizer.apply_chat_template(CONVERSATION["messages"], tokenize=False)
    assert tokenizer.decode(example["input_ids"]) == rendered


def test_each_labelled_run_ends_with_eos(tokenizer):
    runs = labelled_token_runs(tokenize_record(tokenizer, CONVERSATION))
    assert len(runs) == 2 and all(run[-1] == tokenizer.eos_token_id for run in runs)


def test_weight_zero_turn_gets_no_loss(tokenizer):
    record = copy.deepcopy(CONVERSATION)
    record["messages"][2]["weight"] = 0
    example = tokenize_record(tokenizer, record)
    assert labelled_text(tokenizer, example) == f"Rome.{tokenizer.eos_token}"
    # The weight-0 answer is still in the context.
    assert "Paris." in tokenizer.decode(example["input_ids"])


def test_default_system_prompt_is_not_labelled(tokenizer):
    record = {"messages": CONVERSATION["messages"][1:3]}
    example = tokenize_record(tokenizer, record)
    assert "SmolLM" in tokenizer.decode(example["input_ids"])  # the template inserted its default system prompt
    assert labelled_text(tokenizer, example) == f"Paris.{tokenizer.eos_token}"


def test_text_records_are_fully_labelled_with_eos(tokenizer):
    example = tokenize_record(tokenizer, {"text": "Plants turn light into sugar."})
    assert example["labels"] == example["input_ids"]
    assert example["input_ids"][-1] == tokenizer.eos_token_id


def test_preference_records_are_left_to_the_trainer(tokenizer):
    with pytest.raises(DataError, match="alignment trainer"):
        tokenize_record(tokenizer, {"prompt": [], "chosen": [], "rejected": []})


def test_render_prompt_matches_the_training_prefix(tokenizer):
    prompt = render_prompt(tokenizer, CONVERSATION["messages"][:4])
    example = tokenize_record(tokenizer, CONVERSATION)
    full = tokenizer.decode(example["input_ids"])
    assert full.startswith(prompt) and prompt.endswith("<|im_start|>assistant\n")
    ids = render_prompt(tokenizer, "Hi", tokenize=True)
    assert tokenizer.decode(ids) == render_prompt(tokenizer, [{"role": "user", "content": "Hi"}])


def test_bundled_template_is_prefix_stable(tokenizer):
    assert masking_mode(tokenizer) == "incremental"


class _RewritingTokenizer:
    """Wraps a tokenizer with a template that is not prefix-stable (earlier answers get rewritten)."""

    def __init__(self, inner):
        self.inner = inner
        self.eos_token, self.eos_token_id, self.is_fast = inner.eos_token, inner.eos_token_id, inner.is_fast
        self.chat_template = "rewrites"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        text = "".join(
            f"<|im_start|>{m['role']}\n{m['content']}{self.eos_token}\n" for m in messages
        )
        # Adds a marker after the whole history, so a shorter prefix is not a prefix of the longer one.
        text += f"<|im_start|>meta\n{len(messages)} turns{self.eos_token}\n"
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")

    def __call__(self, *args, **kwargs):
        return self.inner(*args, **kwargs)

    def decode(self, ids):
        return self.inner.decode(ids)


def test_non_prefix_stable_template_falls_back_to_search(tokenizer):
    odd = _RewritingTokenizer(tokenizer)
    assert masking_mode(odd) == "search"
    with pytest.warns(UserWarning, match="not prefix-stable"):
        example = tokenize_record(odd, CONVERSATION)
    assert labelled_text(tokenizer, example) == f"Paris.{tokenizer.eos_token}Rome.{tokenizer.eos_token}"


def test_truncate_keeps_ids_and_labels_aligned(tokenizer):
    example = tokenize_record(tokenizer, CONVERSATION)
    cut = truncate_example(example, len(example["input_ids"]) - 3)
    assert cut["input_ids"] == example["input_ids"][:-3] and cut["labels"] == example["labels"][:-3]
    assert truncate_example(example, 5) is None  # nothing left to learn from


def test_missing_chat_template_is_a_clear_error(tokenizer):
    bare = _RewritingTokenizer(tokenizer)
    bare.chat_template = None
    with pytest.raises(DataError, match="no chat template"):
        tokenize_record(bare, CONVERSATION)


def test_masking_mode_with_a_template_that_refuses_system_turns(tokenizer):
    from transformers import AutoTokenizer

    strict = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    strict.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    assert masking_mode(strict) == "incremental"
    with pytest.raises(DataError, match="rejected this conversation"):
        tokenize_record(strict, CONVERSATION)
