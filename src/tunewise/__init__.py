"""tunewise: plan the adaptation that fits your budget, then train, evaluate, register and serve it."""

__version__ = "0.1.0"
