"""Help panels of `tunewise --help`, in lifecycle order: every command names one of these.

A command module passes `rich_help_panel=_panels.X` to `app.command(...)` or `app.add_typer(...)`;
cli/_help.py sorts by ORDER, then by COMMAND_ORDER, then by registration.
"""

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

# The order panels appear in. Align (preference data from a judge, win-rate against the reference)
# is the second round after a supervised run has been evaluated, before the result is registered.
ORDER = (PLAN, DATA, TRAIN, EVALUATE, ALIGN, REGISTRY, SERVE, CONTROL_PLANE, SCALE_OUT)

# Inside a panel, commands named here come first, in the order a user meets them; any command not
# named here follows in the order its module registers it, so a new module needs no entry.
COMMAND_ORDER = (
    "plan", "diagnose",
    "data",
    "train", "methods", "runs",
    "eval", "compare", "report",
    "synthesize-preferences", "winrate",
    "register", "models", "promote", "rollback",
    "serve", "generate", "merge", "ab",
    "server", "jobs", "keys",
)
