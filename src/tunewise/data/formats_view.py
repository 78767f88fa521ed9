"""Rich rendering of the format catalogue for `tunewise data formats`."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# What each shape trains, in a table cell; --json lists every method name.
_TRAINS = {
    "conversation": "SFT methods; ppo, grpo take its prompts",
    "text": "SFT methods",
    "paired": "dpo, orpo, reward, kto; ppo, grpo take its prompts",
    "unpaired": "kto; ppo, grpo take its prompts",
    "prompt": "ppo, grpo",
}


def render_formats(formats: list[dict[str, Any]], console: Console) -> None:
    """One row per variant: format, variant, who writes that shape, its identifying keys, the methods."""
    table = Table(show_lines=False, pad_edge=False)
    table.add_column("format", no_wrap=True)
    table.add_column("variant", no_wrap=True)  # names are what --format users look up: keep them whole
    for column in ("source", "keys", "trains"):
        table.add_column(column, overflow="fold")
    for fmt in formats:
        for i, variant in enumerate(fmt["variants"]):
            keys = " | ".join(" + ".join(sig) for sig in variant["keys"])
            trains = f"{variant['shape']}: {_TRAINS[variant['shape']]}"
            table.add_row(fmt["name"] if i == 0 else "", variant["name"], variant["source"], keys, trains,
                          end_section=i == len(fmt["variants"]) - 1)
    console.print(table)
    console.print(Text("Detection reads each row's keys; `--format NAME` (data.format) forces a format. "
                       "`tunewise data formats NAME` shows a format's fields and an example row.", style="dim"))


def render_format_detail(fmt: dict[str, Any], console: Console) -> None:
    """Every variant of one format: its fields, what it drops and why, an example row."""
    console.print(Text.assemble((fmt["name"], "bold cyan"), f" ({fmt['kind']}): {fmt['description']}"))
    for variant in fmt["variants"]:
        keys = " | ".join(" + ".join(sig) for sig in variant["keys"])
        console.print(Text.assemble("\n", (variant["name"], "bold"), f"  from {variant['source']}; keys {keys}; "
                                    f"trains with {', '.join(variant['methods'])}"))
        for path, meaning in variant["fields"].items():
            console.print(Text.assemble("  ", (path, "cyan"), f": {meaning}"), soft_wrap=True)
        for path, why in variant["dropped"].items():
            console.print(Text.assemble("  ", (path, "yellow"), f": dropped, {why}"), soft_wrap=True)
        console.print(Text(f"  example: {json.dumps(variant['example'], ensure_ascii=False)}", style="dim"), soft_wrap=True)
