"""Training: the run stage (run.py), the loop (loop.py), and durable checkpoints (checkpoint.py)."""
