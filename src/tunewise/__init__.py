"""tunewise: plan the adaptation that fits your budget, then train, evaluate and register it."""

__version__ = "0.1.0"
