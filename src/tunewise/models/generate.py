"""Generation with the chat template the model was trained with."""

from __future__ import annotations

from typing import Any


def chat_messages(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": prompt}]


def generate_reply(model: Any, tokenizer: Any, messages: list[dict[str, str]], *, max_new_tokens: int = 128,
                   temperature: float = 0.0) -> str:
    """Answer one conversation; greedy when temperature is 0."""
    return generate_replies(model, tokenizer, [messages], max_new_tokens=max_new_tokens, temperature=temperature)[0]


def generate_replies(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], *,
                     max_new_tokens: int = 128, temperature: float = 0.0, batch_size: int = 8) -> list[str]:
    """Answer many conversations in left-padded batches."""
    import torch

    device = next(model.parameters()).device
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    replies: list[str] = []
    try:
        for start in range(0, len(conversations), batch_size):
            chunk = conversations[start : start + batch_size]
            texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chunk]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
            with torch.no_grad():
                out = model.generate(
                    **enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling
                )
            new_tokens = out[:, enc["input_ids"].shape[1] :]
            replies.extend(t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = old_side
    return replies
