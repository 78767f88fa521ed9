"""Assistant-only loss masking through the chat template, and loss scoring."""

from __future__ import annotations

import math

from tunewise.eval.heldout import IGNORE, encode_record, loss_and_perplexity, prompt_and_reference


def _scored_text(tokenizer, encoded) -> str:
    return tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE])


def test_only_assistant_turns_are_scored_end_of_turn_included(tokenizer):
    record = {"messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]}
    encoded = encode_record(tokenizer, record, max_length=512)
    assert len(encoded.input_ids) == len(encoded.labels)
    assert _scored_text(tokenizer, encoded) == "Hello there<|im_end|>\n4<|im_end|>\n"
    full = tokenizer.apply_chat_template(record["messages"], tokenize=False)
    assert tokenizer.decode(encoded.input_ids) == full


def test_text_records_score_every_token_and_truncate(tokenizer):
    encoded = encode_record(tokenizer, {"text": "one two three four five six"}, max_length=3)
    assert len(encoded.input_ids) == 3 and encoded.labels == encoded.input_ids


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
