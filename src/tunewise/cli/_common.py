"""Small helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console()


def print_json(payload: Any) -> None:
    """Machine-readable output on stdout (for --json flags)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
