"""Exact and near duplicates are removed, counted, and reported with the line they repeat."""

from __future__ import annotations

from tunewise.data import read_dataset, validate_file
from tunewise.data.dedup import find_near_duplicates, record_digest

from ._helpers import chat_row, write_jsonl

LONG_ANSWER = (
    "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill "
    "and the birds sing their morning songs across the quiet green valley below the old stone bridge"
)


def test_exact_duplicates_name_the_first_line(tmp_path):
    rows = [chat_row("Hi", "Hello"), chat_row("Bye", "Goodbye"), chat_row("Hi", "Hello"), chat_row("Hi", "Hello")]
    report = validate_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert report.exact_duplicates == [{"line": 3, "duplicate_of": 1}, {"line": 4, "duplicate_of": 1}]
    assert report.rows_kept == 2


def test_exact_duplicates_across_formats_of_the_same_record(tmp_path):
    # Key order and whitespace in the JSON do not matter: the normalized record is hashed.
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{ "output":"b", "instruction":"a" }\n', encoding="utf-8")
    assert validate_file(path).exact_duplicates == [{"line": 2, "duplicate_of": 1}]


def test_near_duplicates_removed_with_similarity(tmp_path):
    rows = [
        chat_row("Describe the scene.", LONG_ANSWER),
        chat_row("What is two plus two?", "Four."),
        chat_row("Describe the scene.", LONG_ANSWER + " today"),
    ]
    report = validate_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert report.exact_duplicates == []
    (near,) = report.near_duplicates
    assert near["line"] == 3 and near["duplicate_of"] == 1 and near["similarity"] >= 0.9
    assert report.rows_kept == 2


def test_near_threshold_from_the_caller(tmp_path):
    rows = [chat_row("Describe the scene.", LONG_ANSWER), chat_row("Describe the scene.", LONG_ANSWER + " and then it rained hard")]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    assert validate_file(path, near_dup_threshold=0.99).near_duplicates == []
    assert len(validate_file(path, near_dup_threshold=0.6).near_duplicates) == 1


def test_different_rows_are_not_near_duplicates(tmp_path):
    rows = [chat_row(f"What is {i} plus {i}?", f"It is {2 * i}.") for i in range(50)]
    report = validate_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert report.near_duplicates == [] and report.rows_kept == 50


def test_dedup_off_keeps_everything(tmp_path):
    rows = [chat_row("Hi", "Hello")] * 3
    data = read_dataset(write_jsonl(tmp_path / "d.jsonl", rows), dedup=False)
    assert len(data.records) == 3 and data.report.exact_duplicates == []


def test_near_duplicate_search_is_deterministic():
    records = [{"text": LONG_ANSWER + f" variant {i % 3}"} for i in range(30)]
    lines = list(range(1, 31))
    assert find_near_duplicates(records, lines, 0.8) == find_near_duplicates(records, lines, 0.8)


def test_digest_ignores_key_order():
    assert record_digest({"a": 1, "b": [1, 2]}) == record_digest({"b": [1, 2], "a": 1})


def test_long_documents_are_signed_in_pieces_with_the_same_result(monkeypatch):
    import tunewise.data.dedup as dedup

    signer = dedup._Signer(dedup.NUM_PERM)
    ids = dedup.word_ids(" ".join(f"word{i % 97} x{i % 13}" for i in range(5000)))
    whole = signer.sign([ids])[0]
    monkeypatch.setattr(dedup, "_BATCH_WORDS", 700)
    assert (signer.sign_long(ids) == whole).all()
    records = [{"text": "short text one"}, {"text": " ".join(map(str, range(3000)))}, {"text": "short text two"}]
    batches = list(dedup._word_batches((record, None) for record in records))
    assert [len(batch) for batch in batches] == [1, 1, 1]  # the long document comes alone
    assert [len(signer.sign_batch([ids for _, _, ids in batch])) for batch in batches] == [1, 1, 1]
    assert [d for _, _, d in dedup.near_duplicates(((r, n) for n, r in enumerate(records)), 0.9)] == [None] * 3



def test_only_a_shared_band_makes_a_candidate_even_when_band_hashes_collide(monkeypatch):
    # As in MinHashLSH: a signature off by one value in every band is no candidate, however similar.
    import numpy as np

    import tunewise.data.dedup as dedup

    monkeypatch.setattr(dedup, "_BAND_HASH_MASK", 0)  # every band of every record hashes alike
    index = dedup.NearDuplicateIndex(0.5)
    starts = [start for start, _ in index._bands]
    first = np.arange(dedup.NUM_PERM, dtype=np.uint32)
    apart = first.copy()
    apart[starts] += 1000
    assert index.check(first, 1) is None
    assert index.check(apart, 2) is None  # similar to line 1 but shares no band with it: kept
    close = apart.copy()
    close[starts[0]] = first[starts[0]]  # shares band 0 with line 1, the others with line 2
    similarity = round(1 - (len(starts) - 1) / dedup.NUM_PERM, 3)
    assert index.check(close, 3) == dedup.Duplicate("near", 1, similarity)  # the earliest match wins


def test_index_matches_datasketch_minhashlsh():
    # The same decisions as querying, then inserting into, MinHashLSH with the same bands.
    import numpy as np
    from datasketch import MinHashLSH

    import tunewise.data.dedup as dedup

    rng = np.random.default_rng(0)
    bases = rng.integers(0, 1 << 32, (15, dedup.NUM_PERM), dtype=np.uint64).astype(np.uint32)
    signatures = bases[rng.integers(0, 15, 300)]
    signatures[rng.random(signatures.shape) < 0.08] = 7  # about 8% of the values changed per copy
    index = dedup.NearDuplicateIndex(0.8)
    lsh = MinHashLSH(threshold=0.8, num_perm=dedup.NUM_PERM, weights=dedup._LSH_WEIGHTS)
    kept: list[tuple[int, np.ndarray]] = []  # (line, signature) by LSH key
    for line, values in enumerate(signatures):
        sketch = _lean_minhash(values)
        matches = sorted(k for k in lsh.query(sketch) if np.count_nonzero(values == kept[k][1]) >= 0.8 * dedup.NUM_PERM)
        found = index.check(values, line)
        assert (found.of_line if found else None) == (kept[matches[0]][0] if matches else None)
        if not matches:
            lsh.insert(len(kept), sketch)
            kept.append((line, values))
    assert 15 <= len(kept) < 250  # some copies were caught, some were too far apart


def _lean_minhash(values):
    from datasketch import LeanMinHash

    try:
        return LeanMinHash(seed=1, hashvalues=values, scheme="affine32")
    except TypeError:  # datasketch < 2 has no schemes
        return LeanMinHash(seed=1, hashvalues=values)
