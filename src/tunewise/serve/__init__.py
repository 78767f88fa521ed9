"""Serving: OpenAI-compatible inference with many adapters on one base model (see docs/serving.md)."""
