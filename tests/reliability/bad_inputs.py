"""Run the bad-input corpus (tests/fixtures/bad_inputs/cases.yaml) through `python -m tunewise`.

Every case runs in a directory of its own: `home/` (the workspace, seeded with a run that must
survive), `inputs/` (a copy of the corpus files), `outside/` (must stay empty) and `cwd/`. What is
checked per case: the exit code, the strings the message must name, no traceback, every file that
existed before is unchanged, and every new file lies inside the workspace.

Speed: most cases share a few batch processes (tests/reliability/_cli_batch.py), which call
`tunewise.cli.main` -- the function `python -m tunewise` runs -- with the output file descriptors
redirected, so the interpreter and torch start once per batch. Cases marked `isolate` (inputs that
could hang or exhaust memory) get a real `python -m tunewise` process with a timeout and a memory
watchdog. Used by tests/reliability/test_bad_inputs.py and bench/reliability.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "bad_inputs"
BATCH_DRIVER = Path(__file__).resolve().parent / "_cli_batch.py"
REPO = Path(__file__).resolve().parents[2]
ISOLATED_TIMEOUT_S = 120
ISOLATED_MEMORY_LIMIT_MIB = 4096
SEEDED_RUN = Path("runs") / "keep" / "marker.txt"  # a workspace file no failed command may touch


@dataclass
class Case:
    id: str
    argv: list[str]
    exit: list[int] = field(default_factory=lambda: [1, 2])
    expect: list[str] = field(default_factory=list)
    write: dict[str, str] = field(default_factory=dict)
    generate: list[str] = field(default_factory=list)
    isolate: bool = False
    known_bug: str | None = None


@dataclass
class Outcome:
    case: Case
    exit_code: int | None
    output: str
    seconds: float
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def load_cases() -> list[Case]:
    cases = [Case(**raw) for raw in yaml.safe_load((CORPUS / "cases.yaml").read_text())]
    ids = [c.id for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate case ids in cases.yaml: {sorted(duplicates)}")
    return cases


# --- inputs built at run time -------------------------------------------------------------------


def _huge_line(path: Path) -> None:
    good = (CORPUS / "files" / "good.jsonl").read_text().splitlines()
    filler = "x" * (11 * 2**20)  # past the 10 MiB line limit
    path.write_text(good[0] + "\n" + json.dumps({"messages": [{"role": "user", "content": filler}]}) + "\n" + good[1] + "\n")


def _deep_json(path: Path) -> None:
    good = (CORPUS / "files" / "good.jsonl").read_text().splitlines()[0]
    depth = 200_000
    path.write_text(good + "\n" + '{"messages": ' + "[" * depth + "]" * depth + "}\n")


def _deep_yaml(path: Path) -> None:
    depth = 50_000
    path.write_text("data: " + "{a: " * depth + "1" + "}" * depth + "\n")


def _alias_bomb(path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    lines += ["data: {train: *a9}"]
    path.write_text("\n".join(lines) + "\n")


def _endless(path: Path) -> None:
    path.symlink_to("/dev/zero")  # no newline, ever: the reader must stop at its line limit


GENERATORS = {
    "huge_line.jsonl": _huge_line,
    "deep.jsonl": _deep_json,
    "deep.yaml": _deep_yaml,
    "bomb.yaml": _alias_bomb,
    "endless.jsonl": _endless,
    "a_directory.jsonl": lambda path: path.mkdir(),
}


# --- one case's directory -----------------------------------------------------------------------


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (or a marker for directories and links) of everything under root."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class _Prepared:
    case: Case
    root: Path
    argv: list[str]
    env: dict[str, str]
    before: dict[str, str]


def _prepare(case: Case, root: Path, tiny_model: Path) -> _Prepared:
    inputs, home, outside, cwd = (root / d for d in ("inputs", "home", "outside", "cwd"))
    shutil.copytree(CORPUS / "files", inputs)
    for d in (home, outside, cwd):
        d.mkdir(parents=True)
    (home / SEEDED_RUN).parent.mkdir(parents=True)
    (home / SEEDED_RUN).write_text("an earlier run's file\n")
    places = {"inputs": str(inputs), "tiny_model": str(tiny_model), "outside": str(outside), "home": str(home)}
    for name, text in case.write.items():
        (inputs / name).write_text(_fill(text, places))
    for name in case.generate:
        GENERATORS[name](inputs / name)
    env = {"TUNEWISE_HOME": str(home), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "COLUMNS": "200", "NO_COLOR": "1"}
    return _Prepared(case, root, [_fill(a, places) for a in case.argv], env, _snapshot(root))


def _judge(prepared: _Prepared, exit_code: int | None, output: str, seconds: float) -> Outcome:
    case, root = prepared.case, prepared.root
    problems = []
    if exit_code not in case.exit:
        problems.append(f"exit code {exit_code}, expected one of {case.exit}")
    if "Traceback (most recent call last)" in output:
        problems.append("printed a traceback")
    flat = " ".join(output.split())
    for text in case.expect:
        if text not in output and text not in flat:
            problems.append(f"message does not name {text!r}")
    after = _snapshot(root)
    for rel, digest in prepared.before.items():
        if rel not in after:
            problems.append(f"lost {rel}")
        elif after[rel] != digest:
            problems.append(f"changed {rel}")
    for rel in sorted(set(after) - set(prepared.before)):
        if not rel.startswith("home" + os.sep) and rel != "home":
            problems.append(f"wrote outside the workspace: {rel}")
            break
    return Outcome(case, exit_code, output, seconds, problems)


def build_tiny_model(out: Path) -> Path:
    """The 2-layer, hidden-64 random Llama of tests/conftest.py (bundled tokenizer), for scripts."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunewise.models import resolve_base_model
    from tunewise.models.load import load_tokenizer

    tokenizer = load_tokenizer(resolve_base_model("smollm2-135m-instruct"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


# --- running ------------------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env.update(COLUMNS="200", NO_COLOR="1")  # one line per message: expected names are not wrapped apart
    return env


def _output_path(item: _Prepared) -> Path:
    return item.root.parent / f"{item.case.id}.out"  # beside the case directory, not in it


def _run_batch(items: list[_Prepared]) -> list[Outcome]:
    jobs = []
    for item in items:
        jobs.append({"argv": item.argv, "env": item.env, "cwd": str(item.root / "cwd"),
                     "output": str(_output_path(item))})
    spec = items[0].root.parent / f"batch-{items[0].case.id}.json"
    spec.write_text(json.dumps(jobs))
    proc = subprocess.run([sys.executable, str(BATCH_DRIVER), str(spec)], env=_base_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=60 * 20)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    outcomes = []
    for i, item in enumerate(items):
        if i >= len(results):
            outcomes.append(Outcome(item.case, None, proc.stderr[-3000:], 0.0,
                                    [f"the batch process died before this case (exit {proc.returncode})"]))
            continue
        output = Path(jobs[i]["output"]).read_text(errors="replace")
        outcomes.append(_judge(item, results[i]["exit_code"], output, results[i]["seconds"]))
    return outcomes


def _run_isolated(item: _Prepared) -> Outcome:
    import psutil

    env = {**_base_env(), **item.env}
    out_path = _output_path(item)
    started = time.monotonic()
    with out_path.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tunewise", *item.argv], env=env, cwd=item.root / "cwd",
                                stdout=out, stderr=subprocess.STDOUT)
        watched, killed = psutil.Process(proc.pid), None
        while proc.poll() is None:
            elapsed = time.monotonic() - started
            try:
                rss_mib = watched.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                break
            if elapsed > ISOLATED_TIMEOUT_S or rss_mib > ISOLATED_MEMORY_LIMIT_MIB:
                killed = f"killed after {elapsed:.0f} s at {rss_mib:.0f} MiB (hung or memory blow-up)"
                proc.kill()
                break
            time.sleep(0.1)
        code = proc.wait()
    outcome = _judge(item, code, out_path.read_text(errors="replace"), time.monotonic() - started)
    if killed:
        outcome.problems.insert(0, killed)
    return outcome


def run_cases(cases: list[Case], tiny_model: Path, *, scratch: Path | None = None, workers: int = 2) -> list[Outcome]:
    """Run `cases`; returns one Outcome per case, in order. `workers` processes run at a time."""
    scratch = Path(tempfile.mkdtemp(prefix="tunewise-bad-inputs-", dir=scratch))
    prepared = [_prepare(c, scratch / c.id, Path(tiny_model)) for c in cases]
    shared = [p for p in prepared if not p.case.isolate]
    batches = [shared[i::workers] for i in range(workers) if shared[i::workers]]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_batch, b) for b in batches]
        futures += [pool.submit(_run_isolated, p) for p in prepared if p.case.isolate]
        outcomes: dict[str, Outcome] = {}
        for future in futures:
            result = future.result()
            for outcome in result if isinstance(result, list) else [result]:
                outcomes[outcome.case.id] = outcome
    return [outcomes[c.id] for c in cases]
