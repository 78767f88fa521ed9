"""CheckpointManager and SavePolicy: local and memory:// stores, corruption, pruning, and real SIGKILLs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fsspec
import pytest

from tunewise.errors import CheckpointError
from tunewise.train.checkpoint import CheckpointManager, CheckpointWarning, SavePolicy


def payload(step: int, name: str, size: int) -> bytes:
    """Deterministic bytes per (step, file), so a test can tell which save a file came from."""
    return random.Random(f"{step}/{name}").randbytes(size)


def write_step(directory: Path, step: int, sizes: dict[str, int] | None = None) -> Path:
    sizes = sizes or {"model.safetensors": 3000, "optimizer.pt": 1500, "rng/state.json": 40}
    for name, size in sizes.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(payload(step, name, size))
    return directory


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        yield str(tmp_path / "ckpt")
        return
    url = f"memory://ckpt-{uuid.uuid4().hex}"
    yield url
    fsspec.filesystem("memory").rm(url, recursive=True)


@pytest.fixture
def src(tmp_path) -> Path:
    return tmp_path / "src"


def save(mgr: CheckpointManager, src: Path, step: int, loss: float | None = None):
    metrics = {"val_loss": loss} if loss is not None else None
    return mgr.save(step, write_step(src / str(step), step), metrics)


def assert_files_are_step(directory: Path, step: int) -> None:
    for name in ("model.safetensors", "optimizer.pt", "rng/state.json"):
        data = (directory / name).read_bytes()
        assert data == payload(step, name, len(data)), f"{directory / name} is not step {step}'s"


# --- basic round trip ------------------------------------------------------------------------------


def test_save_list_latest_fetch(root, src, tmp_path):
    mgr = CheckpointManager(root, keep_last=5, keep_best=0)
    assert mgr.list() == [] and mgr.latest() is None and mgr.best() is None
    for step in (10, 20, 30):
        info = save(mgr, src, step, loss=1.0 / step)
    assert info.step == 30 and info.files["model.safetensors"]["bytes"] == 3000
    assert info.uri.endswith("step-00000030")
    assert [i.step for i in mgr.list()] == [10, 20, 30]

    reopened = CheckpointManager(root)  # a fresh process sees the same thing
    latest = reopened.latest()
    assert latest.step == 30 and latest.metrics == {"val_loss": pytest.approx(1 / 30)}
    local = reopened.fetch(latest, dest=tmp_path / "dl")
    assert_files_are_step(local, 30)
    manifest = json.loads((local / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["step"] == 30 and set(manifest["files"]) == set(latest.files)
    if "://" not in root:
        assert local == Path(root) / "step-00000030"  # local stores hand back the checkpoint itself


def test_saving_the_same_step_twice_replaces_it(root, src):
    mgr = CheckpointManager(root, keep_last=3)
    save(mgr, src, 5, loss=2.0)
    write_step(src / "again", 6)  # other content, saved under step 5
    mgr.save(5, src / "again", {"val_loss": 1.0})
    (only,) = mgr.list()
    assert only.step == 5 and only.metrics["val_loss"] == 1.0
    assert_files_are_step(mgr.fetch(mgr.latest(), dest=src / "dl"), 6)
    if "://" not in root:
        assert [p.name for p in Path(root).iterdir()] == ["step-00000005"]


def test_fetch_errors(root, src, tmp_path):
    mgr = CheckpointManager(root, keep_last=2)
    info = save(mgr, src, 1)
    save(mgr, src, 2)
    save(mgr, src, 3)  # prunes step 1
    with pytest.raises(CheckpointError, match="step-00000001 not found"):
        mgr.fetch(info, dest=tmp_path / "dl")
    latest = mgr.latest()
    fs, path = fsspec.core.url_to_fs(files_uri(latest))
    fs.pipe_file(f"{path}/optimizer.pt", b"x" * 1500)  # same size, other bytes
    with pytest.raises(CheckpointError, match="optimizer.pt does not match its sha256"):
        mgr.fetch(latest, dest=tmp_path / "dl")


def test_source_dir_problems(tmp_path):
    mgr = CheckpointManager(tmp_path / "ckpt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no files"):
        mgr.save(1, tmp_path / "empty")
    (tmp_path / "empty" / "manifest.json").write_text("{}")
    with pytest.raises(CheckpointError, match="reserved"):
        mgr.save(1, tmp_path / "empty")


def test_root_not_writable(tmp_path, src):
    (tmp_path / "a-file").write_text("")  # works even as root, unlike chmod
    mgr = CheckpointManager(tmp_path / "a-file" / "ckpt")
    with pytest.raises(CheckpointError, match="is not writable"):
        mgr.check_writable()
    with pytest.raises(CheckpointError, match="cannot write checkpoint step-00000001"):
        save(mgr, src, 1)


# --- incomplete and corrupt checkpoints -------------------------------------------------------------


def test_dir_without_manifest_is_ignored_and_cleaned(root, src):
    mgr = CheckpointManager(root, keep_last=5)
    save(mgr, src, 1)
    fs, base = fsspec.core.url_to_fs(root)
    fs.makedirs(f"{base}/step-00000002", exist_ok=True)
    fs.makedirs(f"{base}/step-00000003", exist_ok=True)
    fs.pipe_file(f"{base}/step-00000002/model.safetensors", b"half")  # a crashed object-store write
    fs.pipe_file(f"{base}/step-00000003/manifest.json", b'{"step": 3, "files"')  # manifest cut short
    assert [i.step for i in mgr.list()] == [1]
    assert mgr.latest().step == 1
    save(mgr, src, 4)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(base, detail=False)) == ["step-00000001", "step-00000004"]


def test_stale_temp_dir_is_ignored_and_removed(tmp_path, src):
    root = tmp_path / "ckpt"
    stale = write_step(root / ".tmp-step-00000009-deadbeef", 9)
    (stale / "manifest.json").write_text(json.dumps({"format_version": 1, "step": 9}))
    past = time.time() - 3600  # written by a process that died before this one started
    os.utime(stale, (past, past))
    mgr = CheckpointManager(root)
    assert mgr.list() == [] and mgr.latest() is None
    save(mgr, src, 1)
    assert not stale.exists()
    assert [p.name for p in root.iterdir()] == ["step-00000001"]


@pytest.mark.parametrize("damage", ["truncate", "alter", "delete"])
def test_corrupt_latest_falls_back_to_previous(root, src, damage, tmp_path):
    mgr = CheckpointManager(root, keep_last=5)
    for step in (1, 2, 3):
        save(mgr, src, step)
    fs, _ = fsspec.core.url_to_fs(root)
    _, path = fsspec.core.url_to_fs(files_uri(mgr.latest()))
    target = f"{path}/model.safetensors"
    if damage == "truncate":
        fs.pipe_file(target, fs.cat_file(target)[:100])
    elif damage == "alter":
        data = bytearray(fs.cat_file(target))
        data[1234] ^= 0xFF
        fs.pipe_file(target, bytes(data))
    else:
        fs.rm_file(target)

    fresh = CheckpointManager(root, keep_last=5)
    with pytest.warns(CheckpointWarning, match="step-00000003.*model.safetensors"):
        good = fresh.latest()
    assert good.step == 2
    assert fresh.latest(verify=False).step == 3  # manifest present, content not checked
    with pytest.warns(CheckpointWarning):
        info, local = fresh.fetch_latest(dest=tmp_path / "dl")
    assert info.step == 2
    assert_files_are_step(local, 2)
    save(fresh, src, 4)  # the next save removes the corrupt one it found
    assert [i.step for i in fresh.list()] == [1, 2, 4]


# --- retention --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep_best", "keep_last", "mode", "kept"),
    [
        (1, 1, "min", [30, 80]),
        (2, 2, "min", [30, 50, 70, 80]),
        (0, 3, "min", [60, 70, 80]),
        (2, 1, "max", [20, 60, 80]),
        (3, 1, "min", [30, 40, 50, 80]),
    ],
)
def test_pruning_keeps_best_and_last(tmp_path, src, keep_best, keep_last, mode, kept):
    losses = {10: 5.0, 20: 9.0, 30: 1.0, 40: 3.0, 50: 2.0, 60: 8.0, 70: None, 80: None}
    mgr = CheckpointManager(tmp_path / "ckpt", keep_best=keep_best, keep_last=keep_last, mode=mode)
    for step, loss in losses.items():
        save(mgr, src, step, loss)
    assert [i.step for i in mgr.list()] == kept
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [f"step-{s:08d}" for s in kept]
    scored = {s: v for s, v in losses.items() if s in kept and v is not None}
    assert mgr.best().step == (min if mode == "min" else max)(scored, key=scored.get)


def test_best_uses_metric_and_ignores_missing_or_nan(root, src):
    mgr = CheckpointManager(root, keep_best=5, keep_last=5, metric="accuracy", mode="max")
    mgr.save(1, write_step(src / "1", 1), {"accuracy": 0.5})
    mgr.save(2, write_step(src / "2", 2), {"accuracy": float("nan")})
    mgr.save(3, write_step(src / "3", 3), {"val_loss": 0.1})
    mgr.save(4, write_step(src / "4", 4), {"accuracy": 0.7})
    assert mgr.best().step == 4


def test_never_deletes_the_checkpoint_just_written(tmp_path, src):
    mgr = CheckpointManager(tmp_path / "ckpt", keep_best=1, keep_last=1)
    save(mgr, src, 100, loss=1.0)
    save(mgr, src, 50, loss=9.0)  # older step and worse: still kept because it was just saved
    assert [i.step for i in mgr.list()] == [50, 100]


def test_from_spec(tmp_path):
    from tunewise.spec import CheckpointSpec

    spec = CheckpointSpec(keep_best=2, keep_last=3, every_steps=10, every_minutes=5)
    mgr = CheckpointManager.from_spec(spec, tmp_path / "run")
    assert mgr.root == str(tmp_path / "run" / "checkpoints") and (mgr.keep_best, mgr.keep_last) == (2, 3)
    policy = SavePolicy.from_spec(spec)
    assert (policy.every_steps, policy.every_minutes) == (10, 5)


# --- save policy ------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_save_policy_by_steps():
    policy = SavePolicy(every_steps=3, every_minutes=None, clock=FakeClock())
    fired = [s for s in range(0, 11) if policy.should_save(s)]
    assert fired == [3, 6, 9]
    policy.mark_saved(9)
    assert not policy.should_save(9)


def test_save_policy_by_minutes():
    clock = FakeClock()
    policy = SavePolicy(every_steps=None, every_minutes=2, clock=clock)
    assert not policy.should_save(1)
    clock.now_s += 119
    assert not policy.should_save(2)
    clock.now_s += 1
    assert policy.should_save(3)
    policy.mark_saved(3)
    assert not policy.should_save(4)
    clock.now_s += 120
    assert policy.should_save(5)


def test_save_policy_both_and_validation():
    clock = FakeClock()
    policy = SavePolicy(every_steps=100, every_minutes=1, clock=clock)
    clock.now_s += 61
    assert policy.should_save(7)
    policy.mark_saved(7)
    assert policy.should_save(100) and not policy.should_save(101)
    with pytest.raises(CheckpointError, match="every_steps"):
        SavePolicy(every_steps=0, every_minutes=None)
    with pytest.raises(CheckpointError, match="every_minutes"):
        SavePolicy(every_steps=None, every_minutes=0)


def files_uri(info) -> str:
    """Where a checkpoint's files are: its directory, or the upload prefix inside it (object stores)."""
    return f"{info.uri}/{info.prefix}" if info.prefix else info.uri


# --- real crashes -----------------------------------------------------------------------------------

WRITER = """
import shutil, sys
from pathlib import Path
sys.path.insert(0, {tests_dir!r})
from test_checkpoint import write_step
from tunewise.train.checkpoint import CheckpointManager

root, work, start, protocol, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
mgr = CheckpointManager(root, keep_best=1, keep_last=2)
if protocol == "object-store":
    mgr._store.commit_by_rename = False  # files under an upload prefix, the manifest naming it last
sizes = {{"model.safetensors": 6_000_000, "optimizer.pt": 3_000_000, "rng/state.json": 200}}
print("ready", flush=True)
step = start
while count < 0 or step < start + count:
    src = write_step(work / str(step), step, sizes)
    print("saving", step, flush=True)
    mgr.save(step, src, {{"val_loss": 1.0 / (1 + step % 7)}})
    print("saved", step, flush=True)
    shutil.rmtree(src)
    step += 1
"""


def check_store_after_crash(root: Path) -> int | None:
    """Every checkpoint that lists must verify and hold exactly its own step's bytes."""
    mgr = CheckpointManager(root)
    infos = mgr.list()
    for info in infos:
        assert_files_are_step(Path(files_uri(info)), info.step)
    latest = mgr.latest()
    assert (latest and latest.step) == (infos[-1].step if infos else None)
    return latest.step if latest else None


def leftovers(root: Path) -> list[str]:
    """What a writer killed mid-save leaves: temp dirs and step dirs without a manifest."""
    if not root.exists():
        return []
    return [p.name for p in root.iterdir() if p.name.startswith(".tmp-") or not (p / "manifest.json").is_file()]


def kill_inside_a_save(proc: subprocess.Popen, rng: random.Random) -> None:
    """SIGKILL at a random point of a save, timed from how long the previous save took."""
    timings = []
    for _ in range(rng.randint(2, 3)):
        assert proc.stdout.readline().startswith("saving")
        begun = time.monotonic()
        assert proc.stdout.readline().startswith("saved")
        timings.append(time.monotonic() - begun)
    assert proc.stdout.readline().startswith("saving")
    time.sleep(rng.uniform(0.05, 0.8) * timings[-1])
    os.kill(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("protocol", ["rename", "object-store"])
def test_sigkill_at_random_moments_never_leaves_a_half_written_checkpoint(tmp_path, protocol):
    root, work = tmp_path / "ckpt", tmp_path / "work"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests_dir=str(Path(__file__).parent)))
    rng = random.Random(1234)

    def writer(start: int, count: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(root), str(work), str(start), protocol, str(count)],
                                stdout=subprocess.PIPE, text=True)

    latest_steps, hit_mid_save = [], 0
    for kill in range(6):
        latest = check_store_after_crash(root)
        proc = writer((latest or 0) + 1, -1)
        assert proc.stdout.readline().strip() == "ready"
        if kill % 2:
            kill_inside_a_save(proc, rng)
        else:
            time.sleep(rng.uniform(0.1, 0.8))  # anywhere: writing the trainer files, saving or pruning
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        hit_mid_save += bool(leftovers(root))
        latest_steps.append(check_store_after_crash(root))
    assert latest_steps[-1] is not None and latest_steps[-1] >= 3, latest_steps
    assert hit_mid_save, "no kill landed inside a save, so this run tested nothing"

    proc = writer(latest_steps[-1] + 1, 2)  # a clean run after the crashes tidies up what they left
    proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    assert check_store_after_crash(root) == latest_steps[-1] + 2
    assert leftovers(root) == []
    assert len(list(root.iterdir())) <= 3  # keep_last=2 plus keep_best=1
