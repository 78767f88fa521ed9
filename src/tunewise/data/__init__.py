"""The data pipeline: load, detect, validate, deduplicate, split, template, tokenize and pack.

Normalized records (plain dicts):
    conversation  {"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": str, "weight"?: 0|1,
                                 "tool_calls"?: [...], "tool_call_id"?: str, "name"?: str}], "tools"?: [...]}
                  from chat, sharegpt, alpaca and completion rows
    text          {"text": str}, or {"segments": [{"text": str, "label": bool}]} (Axolotl's input_output)
    preference    {"prompt": [messages], "chosen": [assistant messages], "rejected": [...], "tools"?}  (paired)
                  {"prompt": [messages], "completion": [assistant messages], "label": bool, "tools"?}  (unpaired, KTO)
    prompt        {"prompt": [messages ending with a user turn]}  (PPO, GRPO sample the answers)
Each format reads several source shapes (its variants: OpenAI, TRL, LLaMA-Factory, Axolotl); see
tunewise.data.formats and `tunewise data formats`.
Tokenized examples: {"input_ids": [int], "labels": [int]}; packed ones add "position_ids".
"""

from tunewise.data.formats import RowFormat, all_formats, detect_format, format_names, get_format
from tunewise.data.packing import collate, length_grouped_batches, pack_examples
from tunewise.data.pipeline import read_dataset, validate_file
from tunewise.data.prepare import PreparedData, prepare_data, split_indices
from tunewise.data.problems import FieldError, RowError
from tunewise.data.readers import MAX_LINE_BYTES, load_rows
from tunewise.data.report import DataReport
from tunewise.data.templating import IGNORE_INDEX, masking_mode, render_prompt, tokenize_record, truncate_example
from tunewise.data.view import render_report

__all__ = [
    "IGNORE_INDEX",
    "MAX_LINE_BYTES",
    "DataReport",
    "FieldError",
    "PreparedData",
    "RowError",
    "RowFormat",
    "all_formats",
    "collate",
    "detect_format",
    "format_names",
    "get_format",
    "length_grouped_batches",
    "load_rows",
    "masking_mode",
    "pack_examples",
    "prepare_data",
    "read_dataset",
    "render_prompt",
    "render_report",
    "split_indices",
    "tokenize_record",
    "truncate_example",
    "validate_file",
]
