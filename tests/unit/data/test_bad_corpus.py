"""Every malformed file in tests/fixtures/data/bad gives a clear error naming file:line and field.

expected.json holds, per file, the line (null: the file as a whole), the field (null: the row
itself) and a phrase of the reason. Each file runs through the Python API and through the CLI in a
subprocess (exit 1, no traceback, file:line in the output).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tunewise.data import validate_file

from ._helpers import BAD

EXPECTED: dict[str, dict] = json.loads((BAD / "expected.json").read_text(encoding="utf-8"))
NAMES = sorted(EXPECTED)


def _where(path: Path, expected: dict) -> str:
    return f"{path}:{expected['line']}:" if expected["line"] is not None else f"{path}:"


def _matches(text: str, path: Path, expected: dict) -> bool:
    """One output line names file:line, the field and the reason."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith(_where(path, expected)):
            continue
        if expected["field"] is not None and f" {expected['field']}:" not in line:
            continue
        if expected["reason"] in line:
            return True
    return False


def test_corpus_is_big_and_fully_described():
    files = {p.name for p in BAD.iterdir() if p.name != "expected.json"}
    assert files == set(EXPECTED), "every bad file needs an entry in expected.json and vice versa"
    assert len(files) >= 20


@pytest.mark.parametrize("name", NAMES)
def test_python_api_names_file_line_and_field(name):
    expected = EXPECTED[name]
    path = BAD / name
    args = expected.get("args", [])
    forced = args[args.index("--format") + 1] if "--format" in args else None
    report = validate_file(path, format=forced)
    assert not report.ok
    messages = "\n".join(str(p) for p in report.errors)
    assert _matches(messages, path, expected), messages
    for problem in report.errors:
        assert problem.file == str(path)
    json.dumps(report.to_dict())  # the JSON twin always serializes


def _run_cli(path: Path, extra: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tunewise", "data", "validate", str(path), "--no-tokenize", *extra]
    env = {**os.environ, "COLUMNS": "80"}  # narrow terminal: file:line must still come out whole
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def cli_results() -> dict[str, subprocess.CompletedProcess]:
    """All CLI runs at once in parallel processes (each run starts a Python, about a second)."""
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 4)) as pool:
        futures = {name: pool.submit(_run_cli, BAD / name, EXPECTED[name].get("args", [])) for name in NAMES}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", NAMES)
def test_cli_exits_1_and_names_file_line_and_field(name, cli_results):
    result = cli_results[name]
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert _matches(output, BAD / name, EXPECTED[name]), output


def test_cli_json_output_lists_the_same_errors():
    path = BAD / "wrong_role_order.jsonl"
    result = _run_cli(path, ["--json"])
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert payload["errors"] == [
        {"file": str(path), "line": 2, "field": "messages[1].role",
         "reason": "expected 'assistant' as the turn after 'user', got 'user'"}
    ]


def test_cli_huge_line_over_the_default_cap(tmp_path):
    """A real 11 MiB line (generated here rather than stored in the repository)."""
    path = tmp_path / "huge.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"text": "fine"}\n{"text": "' + "x" * (11 * 1024 * 1024) + '"}\n{"text": "also fine"}\n')
    result = _run_cli(path, [])
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert f"{path}:2: line is longer than the 10 MiB line limit" in output
    drop = _run_cli(path, ["--on-invalid", "drop"])
    assert drop.returncode == 0 and "3 read, 2 kept" in drop.stdout


def test_cli_good_file_exits_0_with_token_stats(bundled_model_dir):
    from ._helpers import FIXTURES

    env = {**os.environ, "COLUMNS": "120"}
    result = subprocess.run(
        [sys.executable, "-m", "tunewise", "data", "validate", str(FIXTURES / "chat.jsonl")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chat (openai), detected" in result.stdout and "tokens" in result.stdout and "p95" in result.stdout
