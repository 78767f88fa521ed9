"""Help panels of `tunewise --help`, in lifecycle order: every command names one of these."""

from __future__ import annotations

PLAN = "Plan"
DATA = "Data"
TRAIN = "Train"
EVALUATE = "Evaluate"
REGISTRY = "Registry"
ALIGN = "Align"
SERVE = "Serve"
CONTROL_PLANE = "Control plane"
SCALE_OUT = "Scale out"

# The order panels appear in; a command's place inside its panel is the order it registers in.
ORDER = (PLAN, DATA, TRAIN, EVALUATE, REGISTRY, ALIGN, SERVE, CONTROL_PLANE, SCALE_OUT)
