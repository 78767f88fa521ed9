"""How much data a plan trains on: rows and tokens of a file, or numbers the user gives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.errors import DataError

CHARS_PER_TOKEN = 4  # English text under BPE tokenizers; used when no tokenizer is at hand
TOKENIZE_SAMPLE_ROWS = 2000  # rows tokenized exactly; the rest are scaled by their character count


@dataclass(frozen=True)
class DatasetSize:
    examples: int
    tokens: int
    source: str  # how the numbers were found, printed with the plan

    @property
    def mean_tokens(self) -> float:
        return self.tokens / max(self.examples, 1)


def _strings(value: Any) -> list[str]:
    """Every string leaf of a row: the text of any format (alpaca fields, chat messages, ...)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _row_texts(path: Path) -> list[str]:
    if path.suffix.lower() in (".txt", ".md"):
        # A plain corpus: one example per paragraph.
        text = path.read_text(encoding="utf-8", errors="replace")
        return [p for p in (part.strip() for part in text.split("\n\n")) if p]
    from tunewise.data.readers import load_rows

    texts = []
    for _line, row in load_rows(path):
        if not isinstance(row, dict):
            raise DataError(str(row))
        texts.append("\n".join(_strings(row)))
    return texts


def measure_file(path: str | Path, tokenizer: Any | None = None) -> DatasetSize:
    """Count rows and tokens of a training file.

    With a tokenizer the first TOKENIZE_SAMPLE_ROWS rows are tokenized and the tokens-per-character
    ratio scales the rest; without one, tokens are characters / 4.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: data file not found")
    texts = _row_texts(file)
    if not texts:
        raise DataError(f"{file}: no rows")
    chars = sum(len(t) for t in texts)
    if tokenizer is None:
        tokens = chars // CHARS_PER_TOKEN
        how = f"{len(texts)} rows, tokens estimated as characters / {CHARS_PER_TOKEN} (no tokenizer)"
        return DatasetSize(len(texts), max(tokens, len(texts)), how)
    sample = texts[:TOKENIZE_SAMPLE_ROWS]
    sample_tokens = sum(len(ids) for ids in tokenizer(sample, add_special_tokens=False)["input_ids"])
    sample_chars = max(sum(len(t) for t in sample), 1)
    tokens = round(sample_tokens * chars / sample_chars)
    if len(sample) == len(texts):
        how = f"{len(texts)} rows, {tokens} tokens counted with the model's tokenizer"
    else:
        how = (f"{len(texts)} rows; tokens from the model's tokenizer on the first {len(sample)} rows, "
               "scaled to the rest by character count")
    return DatasetSize(len(texts), tokens, how)


def from_numbers(*, tokens: int | None, examples: int | None, mean_tokens: int) -> DatasetSize:
    """A dataset given by size only; the mean example length fills whichever number is missing."""
    if tokens is not None and examples is not None:
        return DatasetSize(examples, tokens, f"{examples} examples, {tokens} tokens (given)")
    if tokens is not None:
        examples = max(1, round(tokens / mean_tokens))
        return DatasetSize(examples, tokens, f"{tokens} tokens (given); about {examples} examples "
                                            f"at an assumed {mean_tokens} tokens each")
    if examples is not None:
        return DatasetSize(examples, examples * mean_tokens,
                           f"{examples} examples (given) at an assumed mean of {mean_tokens} tokens each")
    raise DataError("no dataset size: give a data file, --tokens N or --examples N")
