"""CheckpointManager.save_sharded: every rank stores its own files, rank 0's manifest commits them
last, and a rank that fails leaves nothing committed. Ranks are threads here (the protocol only needs
broadcast and gather); tests/integration/test_multiprocess.py runs it in real processes."""

from __future__ import annotations

import uuid

import pytest

from tests.thread_ranks import save_on_threads, write_shards
from tunewise.errors import CheckpointError
from tunewise.train.checkpoint import CheckpointManager


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path) -> str:
    return str(tmp_path / "ckpt") if request.param == "local" else f"memory://ranks-{uuid.uuid4().hex}"


def test_every_rank_stores_its_files_and_the_manifest_lists_them_all(root, tmp_path):
    folder = write_shards(tmp_path / "staging", world=2)
    manager = CheckpointManager(root, keep_last=2)
    infos = save_on_threads(manager, 1, [folder, folder])  # one machine: the directory is shared
    assert infos[0].step == infos[1].step == 1
    assert sorted(infos[0].files) == ["dcp/.metadata", "dcp/__0_0.distcp", "dcp/__1_0.distcp", "rng/rank-0.pt",
                                      "rng/rank-1.pt", "state.json"]
    fetched = CheckpointManager(root).fetch(CheckpointManager(root).latest(), dest=tmp_path / "dl")
    assert (fetched / "dcp" / "__1_0.distcp").read_bytes() == b"\x01" * 1001


def test_ranks_on_separate_machines_each_store_their_own(tmp_path):
    # Each machine's staging directory holds only what its ranks wrote.
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    write_shards(node0, world=2)
    write_shards(node1, world=2)
    (node0 / "dcp" / "__1_0.distcp").unlink()
    (node1 / "dcp" / "__0_0.distcp").write_bytes(b"not mine: never stored")
    manager = CheckpointManager(tmp_path / "ckpt")
    info = save_on_threads(manager, 3, [node0, node1])[0]
    assert info.files["dcp/__0_0.distcp"]["bytes"] == 1000
    assert info.files["dcp/__1_0.distcp"]["bytes"] == 1001


def test_a_rank_that_fails_leaves_nothing_committed(root, tmp_path):
    good = write_shards(tmp_path / "staging", world=2)
    manager = CheckpointManager(root, keep_last=3)
    assert all(not isinstance(r, Exception) for r in save_on_threads(manager, 1, [good, good]))
    missing = tmp_path / "gone"  # rank 1 lost its staging directory
    results = save_on_threads(manager, 2, [good, missing])
    assert all(isinstance(r, CheckpointError) for r in results)
    assert "rank 1" in results[0].message and "rank 1" in results[1].message
    assert [i.step for i in CheckpointManager(root).list()] == [1]  # the previous checkpoint stays the latest
    save_on_threads(manager, 3, [good, good])
    assert [i.step for i in CheckpointManager(root).list()] == [1, 3]


def test_object_store_writes_are_retried(tmp_path, monkeypatch):
    import fsspec

    manager = CheckpointManager(f"memory://retry-{uuid.uuid4().hex}")
    manager._store.backoff_s = 0.01
    failures = {"left": 2}
    fs = fsspec.filesystem("memory")
    real_pipe = fs.pipe_file

    def flaky_pipe(path, data, **kwargs):
        if path.endswith("manifest.json") and failures["left"]:
            failures["left"] -= 1
            raise ConnectionResetError("connection reset by peer")
        return real_pipe(path, data, **kwargs)

    # fsspec shares one memory filesystem per process: monkeypatch puts its method back for the next test
    monkeypatch.setattr(manager._store.fs, "pipe_file", flaky_pipe)
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w" * 100)
    assert manager.save(1, folder).step == 1 and failures["left"] == 0

    def refused(path, data, **kwargs):
        raise PermissionError("access denied")

    monkeypatch.setattr(manager._store.fs, "pipe_file", refused)
    with pytest.raises(CheckpointError, match="access denied"):
        manager.save(2, folder)
    assert [i.step for i in manager.list()] == [1]
