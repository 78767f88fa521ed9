"""The bad-input corpus (tests/fixtures/bad_inputs/cases.yaml) through `python -m tunewise`: every
case ends with a clear error (exit 1 or 2, a message naming the file:line or field), no traceback,
no input changed, nothing written outside the workspace, nothing lost. Cases marked known_bug are
expected failures until the bug is fixed (strict: a fix turns them into a reminder to unmark)."""

from __future__ import annotations

import hashlib

import pytest

from tests.reliability.bad_inputs import CORPUS, load_cases, run_cases

CASES = load_cases()


def _corpus_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def outcomes(tiny_model_dir, tmp_path_factory):
    before = _corpus_digest()
    results = {o.case.id: o for o in run_cases(CASES, tiny_model_dir, scratch=tmp_path_factory.mktemp("bad"))}
    assert _corpus_digest() == before, "a case changed the corpus files themselves"
    return results


def _param(case):
    marks = [pytest.mark.xfail(strict=True, reason=case.known_bug)] if case.known_bug else []
    return pytest.param(case.id, marks=marks, id=case.id)


def test_corpus_is_broad():
    assert len(CASES) >= 50
    kinds = {c.id.split("-")[0] for c in CASES}
    assert {"data", "cli", "spec", "override", "name", "checkpoint"} <= kinds


@pytest.mark.parametrize("case_id", [_param(c) for c in CASES])
def test_bad_input_gets_a_clear_error(outcomes, case_id):
    outcome = outcomes[case_id]
    assert outcome.ok, f"{case_id}: {'; '.join(outcome.problems)}\n--- output ---\n{outcome.output[-2000:]}"
