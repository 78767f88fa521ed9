"""Serving backends, one module each: transformers (default) and vllm."""
