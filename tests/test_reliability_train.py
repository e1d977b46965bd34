"""Issue #11, training: every sample is checked up front, a bad sample is one line also from a data-loader
worker, and a trainer killed with SIGKILL during an epoch or in the middle of a checkpoint write leaves no
corrupt checkpoint and resumes from the saved step (stale temporaries removed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from data_prep.dataset_format import DatasetFormatError
from data_prep.toy import make_toy_dataset
from facevision.cli import main
from facevision.data import FaceMapsDataset
from facevision.model.checkpoint import load_generator
from facevision.train.checkpoint import load_training_state

REPO = Path(__file__).resolve().parents[1]
DEAD_PID = 2**22 + 777


@pytest.fixture(scope="module")
def big_toy(tmp_path_factory) -> Path:
    """80 samples of 32 px: 20 val, 60 train, so the train split runs past its first 50 samples."""
    root = tmp_path_factory.mktemp("toy80")
    make_toy_dataset(root, count=80, size=32, seed=0)
    return root


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage,why", [("truncate", "truncated PNG"), ("delete", "sample files missing"),
                                        ("garbage", "not a PNG file"), ("resize", "64 x 64 pixels")])
def test_every_sample_is_checked_up_front(big_toy, tmp_path, damage, why):
    data = _copy(big_toy, tmp_path / "data")
    victim = data / "samples" / "toy_00079" / "depth.png"  # the 60th and last train sample
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:-20])
    elif damage == "delete":
        victim.unlink()
    elif damage == "garbage":
        victim.write_bytes(b"GIF89a" + b"\x00" * 100)
    else:
        import numpy as np

        from facevision.face.images import atomic_write_png

        atomic_write_png(victim, np.zeros((64, 64), np.uint16))
    t = time.perf_counter()
    with pytest.raises(DatasetFormatError) as info:
        FaceMapsDataset(data, "train")
    assert str(info.value).startswith(f"{victim}: ") and why in str(info.value) and "\n" not in str(info.value)
    assert time.perf_counter() - t < 5
    FaceMapsDataset(data, "val")  # the other split is fine


def test_a_bad_sample_in_a_loader_worker_is_one_line(big_toy, tmp_path):
    data = _copy(big_toy, tmp_path / "data")
    ds = FaceMapsDataset(data, "train")
    victim = data / "samples" / ds.items[-1]["id"] / "corr.png"
    victim.unlink()  # broken after the up-front check: found by whichever worker reads it
    loader = DataLoader(ds, batch_size=8, num_workers=2)
    with pytest.raises(DatasetFormatError) as info:
        for _ in loader:
            pass
    msg = str(info.value)
    assert msg == f"{victim}: file not found", msg  # not "Caught ... in DataLoader worker process 1. Original Traceback..."


# ----------------------------------------------------------------------------- kill -9 and resume
EPOCHS, STEPS = 2, 3
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # much faster than 2 threads on a busy 2-core machine


@pytest.fixture()
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _train_args(data: Path, run: Path) -> list[str]:
    return ["train", "--data", str(data), "--out", str(run), "--epochs", str(EPOCHS), "--batch-size", "2",
            "--max-steps-per-epoch", str(STEPS), "--save-every-steps", "1", "--workers", "0", "--device", "cpu",
            "--no-augment"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("toy") / "data"
    assert main(["prepare", "toy", "-o", str(data), "--count", "12", "--size", "32"]) == 0
    return data


def _resume_and_count_steps(data: Path, run: Path, monkeypatch) -> int:
    import facevision.train.loop as loop

    calls = []
    real = loop.gan_step
    monkeypatch.setattr(loop, "gan_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(_train_args(data, run) + ["--resume"]) == 0
    return len(calls)


def _no_corrupt_checkpoint(run: Path) -> dict:
    state = load_training_state(run / "last.pt")  # raises CheckpointError if cut or corrupt
    for name in ("last.safetensors", "best.safetensors"):
        if (run / name).exists():
            load_generator(run / name)
    return state


def _temporaries(run: Path) -> list[str]:
    return sorted(p.name for p in run.rglob(".*") if ".tmp" in p.name)


@pytest.mark.slow
def test_kill_during_an_epoch_then_resume(toy, tmp_path, monkeypatch, one_thread):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "facevision"] + _train_args(toy, run), cwd=REPO, env=ONE_THREAD,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not (run / "last.pt").exists():
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # the first checkpoint is after step 1: this lands inside epoch 1
        assert proc.wait(timeout=30) == -signal.SIGKILL, "the trainer ended before it could be killed mid-epoch"
    finally:
        proc.kill()
    saved = _no_corrupt_checkpoint(run)
    assert 0 < saved["step"] < EPOCHS * STEPS
    steps = _resume_and_count_steps(toy, run, monkeypatch)
    assert steps == EPOCHS * STEPS - saved["step"]  # continued from the saved step, not from an epoch start
    final = load_training_state(run / "last.pt")
    assert final["step"] == EPOCHS * STEPS and int(final["opt_g"]["state"][0]["step"]) == EPOCHS * STEPS
    assert _temporaries(run) == []


KILL_IN_THIRD_CHECKPOINT_WRITE = """
import os, signal, sys
real, seen = os.write, set()
def write(fd, data):
    name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    if name.startswith(".last.") and name.endswith(".tmp.pt"):
        seen.add(name)
        if len(seen) == 3:  # half of the third last.pt on disk, then SIGKILL
            real(fd, bytes(memoryview(data)[: len(data) // 2]))
            os.kill(os.getpid(), signal.SIGKILL)
    return real(fd, data)
os.write = write
from facevision.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_during_a_checkpoint_write_then_resume(toy, tmp_path, monkeypatch, one_thread):
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", KILL_IN_THIRD_CHECKPOINT_WRITE] + _train_args(toy, run), cwd=REPO,
                       env=ONE_THREAD, capture_output=True, text=True, timeout=180)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    partial = _temporaries(run)
    assert len(partial) == 1 and partial[0].startswith(".last."), partial  # the cut write, under a temporary name
    saved = _no_corrupt_checkpoint(run)
    assert saved["step"] == 2  # last.pt is still the second checkpoint, complete
    (run / "vis").mkdir(exist_ok=True)
    old_style = run / "vis" / ".epoch_001.a1b2c3d4.tmp.png"  # left by a kill in an older version
    old_style.write_bytes(b"\x89PNG")
    steps = _resume_and_count_steps(toy, run, monkeypatch)
    assert steps == EPOCHS * STEPS - 2
    assert _temporaries(run) == []  # stale temporaries of our naming removed on start
    assert load_training_state(run / "last.pt")["step"] == EPOCHS * STEPS


def test_stale_temporaries_of_other_names_are_kept(tmp_path, toy, one_thread):
    run = tmp_path / "run"
    run.mkdir()
    mine = run / "notes.tmp"
    stale = run / f".last.{DEAD_PID}-abcdefgh.tmp.pt"
    for p in (mine, stale):
        p.write_bytes(b"x")
    assert main(["train", "--data", str(toy), "--out", str(run), "--epochs", "0", "--workers", "0",
                 "--device", "cpu"]) == 0
    assert mine.exists() and not stale.exists()


def test_disk_full_while_training_is_one_line_and_leaves_last_checkpoint_whole(tmp_path, toy, monkeypatch, capsys,
                                                                                one_thread):
    import errno

    run = tmp_path / "run"
    real, seen = os.write, set()

    def write(fd, data):  # the second last.pt write finds the disk full
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".last.") and name.endswith(".tmp.pt"):
            seen.add(name)
            if len(seen) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    assert main(_train_args(toy, run)) == 1
    err = [e for e in capsys.readouterr().err.splitlines() if "error" in e]
    assert err == [f"facevision train: error: {run / 'last.pt'}: no space left on device (disk full)"]
    assert load_training_state(run / "last.pt")["step"] == 1 and _temporaries(run) == []
