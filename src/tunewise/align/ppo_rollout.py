"""PPO's experience: sample answers, score them, and turn scores into per-token advantages.

The RLHF recipe (Ziegler et al., 2019; Ouyang et al., 2022): the reward of an answer is the
reward model's score at its last token, minus kl_coef * (log pi(token) - log pi_ref(token)) at
every token, which keeps the policy near its reference. Advantages use GAE over answer tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


class PolicyWithValue(torch.nn.Module):
    """The policy plus a scalar value head on its last hidden state (the critic shares the backbone).

    The value head stays in fp32 whatever the policy's dtype: value targets are small differences.
    """

    def __init__(self, policy: Any, hidden_size: int):
        super().__init__()
        self.policy = policy
        self.value_head = torch.nn.Linear(hidden_size, 1, dtype=torch.float32)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions(attention_mask),
                          output_hidden_states=True, use_cache=False)
        values = self.value_head(out.hidden_states[-1].float()).squeeze(-1)
        return out.logits, values


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    # Left-padded prompts: count positions from each row's first real token, as generate() does.
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, prompt_len: int, temperature: float) -> torch.Tensor:
    """log p(answer token) for every answer position; logits cover the whole sequence."""
    answer_logits = logits[:, prompt_len - 1 : -1].float() / temperature
    return torch.log_softmax(answer_logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@dataclass
class Rollout:
    """One batch of experience; every per-token tensor is (batch, answer tokens)."""

    sequences: torch.Tensor  # prompt (left-padded) + answer
    attention_mask: torch.Tensor
    prompt_len: int
    answer_mask: torch.Tensor  # 1 up to and including the first eos
    logprobs: torch.Tensor  # policy at sampling time
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor  # reward model / rule, one per answer
    answers: list[str]
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    @property
    def answer_tokens(self) -> torch.Tensor:
        return self.sequences[:, self.prompt_len :]


def answer_mask_for(answer_tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    is_eos = (answer_tokens == eos_id).long()
    return ((is_eos.cumsum(-1) - is_eos) == 0).long()  # tokens before the first eos, and the eos itself


@torch.no_grad()
def collect(model: PolicyWithValue, reference: Any, tokenizer: Any, prompts: list[list[dict]], score: Any, *,
            max_new_tokens: int, temperature: float) -> Rollout:
    """Sample one answer per prompt and measure everything PPO needs about it.

    Args:
        model: policy + value head; reference: a context manager factory yielding the reference policy.
        score: callable(prompts, answers) -> list[float].
    """
    device = next(model.parameters()).device
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False).to(device)
    model.eval()
    sequences = model.policy.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                      max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    prompt_len = enc["input_ids"].shape[1]
    answer_tokens = sequences[:, prompt_len:]
    answer_mask = answer_mask_for(answer_tokens, tokenizer.eos_token_id)
    attention_mask = torch.cat([enc["attention_mask"], answer_mask], dim=1)
    logits, values = model(sequences, attention_mask)
    logprobs = token_logprobs(logits, answer_tokens, prompt_len, temperature)
    with reference() as ref:
        ref_logits = ref(input_ids=sequences, attention_mask=attention_mask, position_ids=positions(attention_mask),
                         use_cache=False).logits
    ref_logprobs = token_logprobs(ref_logits, answer_tokens, prompt_len, temperature)
    answers = tokenizer.batch_decode(answer_tokens * answer_mask + tokenizer.pad_token_id * (1 - answer_mask),
                                     skip_special_tokens=True)
    answers = [a.strip() for a in answers]
    scores = torch.tensor(score(prompts, answers), dtype=torch.float32, device=device)
    return Rollout(sequences, attention_mask, prompt_len, answer_mask, logprobs, ref_logprobs,
                   values[:, prompt_len - 1 : -1], scores, answers)


def shape_rewards(rollout: Rollout, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token rewards, per-token KL): -kl_coef * KL everywhere, plus the score on the last answer token."""
    mask = rollout.answer_mask.float()
    kl = (rollout.logprobs - rollout.ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = mask.sum(1).long().clamp(min=1) - 1
    rewards[torch.arange(len(last)), last] += rollout.scores
    return rewards, kl


def add_advantages(rollout: Rollout, rewards: torch.Tensor, *, gamma: float, lam: float) -> None:
    """GAE(gamma, lambda) over answer tokens, whitened over the batch; returns = advantages + values."""
    mask = rollout.answer_mask.float()
    values = rollout.values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    rollout.returns = advantages + values
    rollout.advantages = whiten(advantages, mask)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = (x * mask).sum() / mask.sum().clamp(min=1)
    var = (((x - mean) ** 2) * mask).sum() / mask.sum().clamp(min=1)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)
