"""Alignment: preference and RL training on TRL, AI-feedback preference synthesis, judges, win-rate
and multi-stage jobs (sft then dpo). The methods themselves live in tunewise.methods (dpo, orpo,
kto, reward, ppo, grpo); this package holds what they share and what comes after training.
"""
