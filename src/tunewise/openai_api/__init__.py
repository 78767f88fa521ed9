"""OpenAI wire shapes in one place: every object the official `openai` client parses.

Serving (chat, completions, models) and the control plane (files, fine-tuning jobs, events,
checkpoints) both answer in these shapes, so compatibility is checked against the official client
in one test suite. Nothing here imports FastAPI or the engines.
"""
