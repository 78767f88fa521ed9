"""Assistant-only loss masking through the chat template, and loss scoring."""

from __future__ import annotations

import json
import math

import pytest

from tunewise.eval.errors import EvalError
from tunewise.eval.heldout import IGNORE, encode_record, loss_and_perplexity, prompt_and_reference, read_records


def _scored_text(tokenizer, encoded) -> str:
    return tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE])


def test_only_assistant_turns_are_scored_end_of_turn_included(tokenizer):
    # the same masking as training (tunewise.data.tokenize_record): answers and their end-of-turn token
    record = {"messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]}
    encoded = encode_record(tokenizer, record, max_length=512)
    assert len(encoded.input_ids) == len(encoded.labels)
    assert _scored_text(tokenizer, encoded) == "Hello there<|im_end|>4<|im_end|>"
    full = tokenizer.apply_chat_template(record["messages"], tokenize=False)
    assert tokenizer.decode(encoded.input_ids) == full


def test_text_records_score_every_token_and_truncate(tokenizer):
    encoded = encode_record(tokenizer, {"text": "one two three four five six"}, max_length=3)
    assert len(encoded.input_ids) == 3 and encoded.labels == encoded.input_ids


def test_preference_records_are_scored_on_the_preferred_answer(tmp_path):
    path = tmp_path / "validation.jsonl"
    prompt = [{"role": "user", "content": "Hi?"}]
    rows = [{"prompt": prompt, "chosen": [{"role": "assistant", "content": "Hello!"}],
             "rejected": [{"role": "assistant", "content": "Go away."}]},
            {"prompt": prompt, "completion": [{"role": "assistant", "content": "Meh."}], "label": False},
            {"prompt": prompt, "completion": [{"role": "assistant", "content": "Hey!"}], "label": True}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = read_records(path)
    assert [prompt_and_reference(r)[1] for r in records] == ["Hello!", "Hey!"]
    path.write_text('{"question": "?"}\n')
    with pytest.raises(EvalError, match="validation.jsonl:1: .*'messages'"):
        read_records(path)


def test_prompt_and_reference_split_the_last_assistant_turn():
    record = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                           {"role": "assistant", "content": "a"}]}
    prompt, reference = prompt_and_reference(record)
    assert [m["role"] for m in prompt] == ["system", "user"] and reference == "a"
    assert prompt_and_reference({"text": "raw"}) is None


def test_loss_of_a_random_model_is_near_uniform(tiny_model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    records = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                             {"role": "assistant", "content": f"Answer number {i}."}]} for i in range(5)]
    encoded = [encode_record(tokenizer, r, 256) for r in records]
    loss, ppl = loss_and_perplexity(model, tokenizer, encoded, batch_size=2)
    assert abs(loss - math.log(len(tokenizer))) < 0.5  # random init: close to log(vocab) nats
    assert ppl == math.exp(loss)
    # batching pads; the result must not depend on the batch size
    assert abs(loss_and_perplexity(model, tokenizer, encoded, batch_size=5)[0] - loss) < 1e-4
