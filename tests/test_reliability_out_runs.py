"""Issue "Reliability II", runs sharing one OUT of ``facevision predict``: one run per OUT at a time (a lock
naming its holder; a killed holder's lock is taken over; released on errors and Ctrl-C; shards of one N
share OUT), a photo's folder is written as a whole (never a mix of two runs, nothing half written left),
a rerun asking for outputs a photo lacks redoes it, and summary.json is rebuilt from OUT at the end of
every run, an interrupted one included (Ctrl-C, SIGTERM).

The detector is stubbed (bright images have one face at FACE_BOX) and the network returns known maps, as in
test_reliability_predict; writers run in the calling thread (``workers=0``) unless a test says otherwise.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facevision.predict.jobs as jobs
import facevision.predict.runner as runner
from facevision.cli import main
from facevision.predict.lock import LOCK_NAME, OutputFolderBusyError, OutputFolderLock
from facevision.predict.out_folder import output_names
from facevision.predict.outputs import OutputConfig
from facevision.predict.predictor import PredictConfig, Predictor
from facevision.predict.runner import BatchConfig, run_batch
from facevision.predict.writer import WriterConfig
from support.outputs import output_files
from support.stub_detector import StubDetector
from support.synthetic import fixed_maps_model, render_reference

ROOT = Path(__file__).resolve().parents[1]
DEAD_PID = 2**22 + 9876  # above Linux's pid_max: never a live process


def _photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(150, 255, (200, 180, 3)).astype(np.uint8)).save(path)
    return path


def _stub(config: PredictConfig | None = None, mesh: bool = True) -> StubDetector:
    f = render_reference(128, 10, 0, 0)
    config = config or (PredictConfig(batch_size=4) if mesh else PredictConfig(batch_size=4, mesh=None))
    return StubDetector(fixed_maps_model(f.depth, f.corr, f.mask), config)


@pytest.fixture(scope="module")
def predictor():
    return _stub()


@pytest.fixture(scope="module")
def no_mesh():
    return _stub(mesh=False)


def _config(**kw) -> BatchConfig:
    return BatchConfig(log=False, writer=WriterConfig(workers=0), **kw)


def _maps(**kw) -> BatchConfig:
    """Only the maps: no mesh work, the fastest run."""
    return _config(output=OutputConfig(outputs=frozenset({"depth", "corr", "mask"})), **kw)


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _errors(capsys) -> list[str]:
    return [e for e in capsys.readouterr().err.splitlines() if e.strip()]


# ----------------------------------------------------------------------------- 1a. one run per OUT
_HOLD = textwrap.dedent("""
    import sys
    from facevision.predict.lock import OutputFolderLock
    lock = OutputFolderLock(sys.argv[1], None if sys.argv[2] == "-" else (int(sys.argv[2]), 2)).acquire()
    print("held", flush=True)
    sys.stdin.readline()
    lock.release()
""")


def _holder(out: Path, shard: int | None = None) -> subprocess.Popen:
    """Another process holding OUT's lock (until its stdin gets a line)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out), "-" if shard is None else str(shard)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_into_the_same_out_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    photo = _photo(tmp_path / "a.png")
    holder = _holder(out)
    try:
        rc = main(["predict", str(photo), "-o", str(out), "--checkpoint", str(tmp_path / "none")])
        err = _errors(capsys)
        assert rc == 2 and len(err) == 1  # refused before the (missing) checkpoint is even looked at
        assert f"{out}: in use by another facevision predict run (pid {holder.pid} on " in err[0]
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written
    finally:
        holder.communicate("\n", timeout=30)
    assert not (out / LOCK_NAME).exists()  # released: removed by its holder


def test_a_lock_left_by_a_killed_run_is_taken_over_saying_so(tmp_path, predictor, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = _holder(out)
    holder.kill()  # SIGKILL: no release, the lock file stays and names the dead process
    holder.wait(timeout=30)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid
    s = run_batch(predictor, [str(_photo(tmp_path / "a.png"))], out, _maps())
    assert s["counts"]["ok"] == 1
    err = _errors(capsys)
    assert len(err) == 1 and "warning" in err[0] and f"taking over the lock of pid {holder.pid}" in err[0]
    assert "no longer running" in err[0]
    assert not (out / LOCK_NAME).exists()


def test_the_lock_is_released_on_an_error_and_on_ctrl_c(tmp_path, predictor, monkeypatch):
    out = tmp_path / "out"
    for exc in (RuntimeError("a bug"), KeyboardInterrupt()):
        def fail(*args, exc=exc, **kw):
            raise exc

        with monkeypatch.context() as m:
            m.setattr(runner, "output_folder_problem", fail)
            with pytest.raises(type(exc)):
                run_batch(predictor, [str(_photo(tmp_path / "a.png"))], out, _maps())
        assert not (out / LOCK_NAME).exists() and (out / "summary.json").is_file()
        with OutputFolderLock(out):  # and it can be taken again
            pass


def test_shards_of_one_n_share_out_but_nothing_else_does(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    other = _holder(out, shard=2)  # shard 2/2 runs in another process
    try:
        with OutputFolderLock(out, (1, 2)):  # shard 1/2 beside it
            with pytest.raises(OutputFolderBusyError, match=f"pid {other.pid} on "):
                OutputFolderLock(out).acquire()  # a run of the whole collection waits for both shards
        with pytest.raises(OutputFolderBusyError, match=f"pid {other.pid} on "):
            OutputFolderLock(out, (2, 2)).acquire()  # the same shard twice
    finally:
        other.communicate("\n", timeout=30)
    assert sorted(p.name for p in out.iterdir()) == []  # the last holder removed the files
    refused: list[BaseException] = []
    with OutputFolderLock(out):  # a thread of this process is another run too: refused, naming this pid
        t = threading.Thread(target=lambda: refused.append(pytest.raises(OutputFolderBusyError,
                                                                         OutputFolderLock(out).acquire)))
        t.start()
        t.join()
    assert refused and f"pid {os.getpid()} on " in str(refused[0].value)


# ----------------------------------------------------------------------------- 1b. a folder written as a whole
def test_a_redone_photo_is_one_runs_folder_and_ctrl_c_midway_leaves_the_old_one_whole(tmp_path, predictor, capsys,
                                                                                       monkeypatch):
    out = tmp_path / "out"
    a, b = _photo(tmp_path / "in" / "a.png", 1), _photo(tmp_path / "in" / "b.png", 2)
    run_batch(predictor, [str(a), str(b)], out, _maps())
    # an older run left a second face in a's folder: a redo of a gives a folder of the redo alone
    old_face = out / "a" / "face1"
    old_face.mkdir()
    (old_face / "result.json").write_text("{}")
    (out / "a" / "face0" / "depth_old.png").write_bytes(b"not this run's")  # and a stray file in its face
    (out / "a" / "face0" / "corr.png").unlink()  # a lacks an output asked for: redone
    s = run_batch(predictor, [str(a), str(b)], out, _maps())
    assert s["counts"] == {"ok": 2, "failed": 0, "skipped": 1}
    assert sorted(p.name for p in (out / "a").iterdir()) == ["face0", "image.json"]
    assert sorted(p.name for p in (out / "a" / "face0").iterdir()) == ["corr.png", "depth.png", "mask.png",
                                                                     "result.json"]
    before = output_files(out)
    # --overwrite stopped by Ctrl-C while b's files are being written: a and b stay as they were, whole
    real = jobs.write_face

    def write_face(face_dir, *args, **kw):
        data = real(face_dir, *args, **kw)
        if Path(face_dir).parent.name.startswith(".b."):
            raise KeyboardInterrupt
        return data

    monkeypatch.setattr(jobs, "write_face", write_face)
    with pytest.raises(KeyboardInterrupt):
        run_batch(predictor, [str(a), str(b)], out, _maps(overwrite=True))
    after = output_files(out)
    assert after.keys() == before.keys()  # no temporary folder left, nothing removed
    assert [k for k in after if after[k] != before[k] and not k.startswith("a/")] == []  # b: not one byte changed
    summary = _summary(out)
    assert summary["interrupted"] and {r["output"]: r["status"] for r in summary["inputs"]} == {"a": "ok", "b": "ok"}
    assert "interrupted" in _errors(capsys)[-1]


def test_stale_temporary_folders_go_and_foreign_folders_are_never_replaced(tmp_path, predictor, capsys):
    out = tmp_path / "out"
    stale = out / f".a.{DEAD_PID}-abcdefgh.tmp"  # a photo's folder being written by a run that was killed
    (stale / "face0").mkdir(parents=True)
    (stale / "face0" / "depth.png").write_bytes(b"half")
    live = out / f".a.{os.getpid()}-abcdefgh.tmp"  # a live process's: kept
    live.mkdir()
    mine = out / "b"  # a folder of the user's, in the way of photo b: never replaced
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert output_names([tmp_path / "b.png"], out) == ["b_2"]
    s = run_batch(predictor, [str(_photo(tmp_path / "a.png")), str(_photo(tmp_path / "b.png"))], out, _maps())
    assert s["counts"]["ok"] == 2 and [r["output"] for r in s["inputs"]] == ["a", "b_2"]
    assert sorted(p.name for p in out.iterdir()) == [live.name, "a", "b", "b_2", "summary.json"]
    assert (mine / "notes.txt").read_text() == "mine"
    # one of the same source, with a file predict does not write: that photo fails in one line, the file stays
    (out / "a" / "notes.txt").write_text("mine too")
    s = run_batch(predictor, [str(tmp_path / "a.png")], out, _maps(overwrite=True))
    assert s["counts"]["failed"] == 1 and (out / "a" / "notes.txt").read_text() == "mine too"
    err = _errors(capsys)
    assert len(err) == 1 and f"{out / 'a'}: holds notes.txt, which facevision predict did not write" in err[0]
    live.rmdir()


# ----------------------------------------------------------------------------- 2. reruns with other options
def test_a_rerun_with_meshes_redoes_photos_of_a_no_mesh_run(tmp_path, predictor, no_mesh):
    out = tmp_path / "out"
    photos = [str(_photo(tmp_path / "a.png", 1)), str(_photo(tmp_path / "b.png", 2))]
    mesh_files = ["mesh.ply", "mesh.obj", "fit_mesh.obj"]
    s1 = run_batch(no_mesh, photos, out, _config())
    assert s1["counts"]["ok"] == 2 and not any((out / "a" / "face0" / f).exists() for f in mesh_files)
    assert "ply" not in s1["inputs"][0]["outputs"] and "depth" in s1["inputs"][0]["outputs"]
    s2 = run_batch(predictor, photos, out, _config())  # was: "already done", and no mesh anywhere
    assert s2["counts"] == {"ok": 2, "failed": 0, "skipped": 0}
    assert all((out / n / "face0" / f).is_file() for n in ("a", "b") for f in mesh_files)
    listed = {r["output"]: r for r in _summary(out)["inputs"]}
    assert all({"ply", "obj", "fit_mesh", "preview", "depth"} <= set(listed[n]["outputs"]) for n in ("a", "b"))
    s3 = run_batch(no_mesh, photos, out, _config())  # everything a --no-mesh run writes is there
    assert s3["counts"]["skipped"] == 2 and all("ply" in r["outputs"] for r in s3["inputs"])


def test_a_rerun_asking_for_other_outputs_adds_them_and_keeps_the_old(tmp_path, predictor):
    out = tmp_path / "out"
    photo = [str(_photo(tmp_path / "a.png"))]
    only = lambda *names: _config(output=OutputConfig(outputs=frozenset(names)))  # noqa: E731
    run_batch(predictor, photo, out, only("depth"))
    s = run_batch(predictor, photo, out, only("corr"))
    assert s["counts"]["skipped"] == 0 and s["inputs"][0]["outputs"] == ["depth", "corr"]
    assert (out / "a" / "face0" / "depth.png").is_file() and (out / "a" / "face0" / "corr.png").is_file()
    assert run_batch(predictor, photo, out, only("depth", "corr"))["counts"]["skipped"] == 1
    s = run_batch(predictor, photo, out, _config(overwrite=True, output=OutputConfig(outputs=frozenset({"mask"}))))
    assert s["inputs"][0]["outputs"] == ["mask"] and not (out / "a" / "face0" / "depth.png").exists()


# ----------------------------------------------------------------------------- 3. summary.json indexes OUT
def test_an_interrupted_run_writes_the_index_and_its_photos_stay_in_it(tmp_path, predictor, monkeypatch):
    out = tmp_path / "out"
    photos = [str(_photo(tmp_path / f"p{i}.png", i)) for i in range(3)]
    calls = []
    real = StubDetector.detect

    def detect(self, image, all_faces=None):
        calls.append(1)
        if len(calls) == 4:  # the first call warms the detector up: this is p2
            raise KeyboardInterrupt
        return real(self, image, all_faces)

    with monkeypatch.context() as m:
        m.setattr(StubDetector, "detect", detect)
        with pytest.raises(KeyboardInterrupt):  # one face per network call: p0 and p1 are written by then
            run_batch(_stub(PredictConfig(batch_size=1)), photos, out, _maps())
    s = _summary(out)  # was: no summary.json at all
    assert s["interrupted"] and s["unfinished"] == 1 and s["counts"] == {"ok": 2, "failed": 0, "skipped": 0}
    assert [r["output"] for r in s["inputs"]] == ["p0", "p1"] and s["finished_in_out"] == 2
    # a later run of another photo keeps them in the index: they are in OUT
    run_batch(predictor, [str(_photo(tmp_path / "q.png", 9))], out, _maps())
    listed = {r["output"]: r for r in _summary(out)["inputs"]}
    assert sorted(listed) == ["p0", "p1", "q"] and listed["p0"]["earlier_batch"] and "earlier_batch" not in listed["q"]
    assert listed["p0"]["input"] == photos[0] and listed["p0"]["outputs"] == ["depth", "corr", "mask"]


def test_sigterm_ends_the_command_like_ctrl_c(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    photos = [str(_photo(tmp_path / f"p{i}.png", i)) for i in range(3)]
    monkeypatch.setattr(Predictor, "from_pretrained", classmethod(lambda cls, *a, config=None, **kw: _stub(config)))
    calls = []
    real = StubDetector.detect

    def detect(self, image, all_faces=None):
        calls.append(1)
        if len(calls) == 3:  # the first call warms the detector up: this is the second photo
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, image, all_faces)

    monkeypatch.setattr(StubDetector, "detect", detect)
    before = signal.getsignal(signal.SIGTERM)
    rc = main(["predict", *photos, "-o", str(out), "--outputs", "depth", "--writers", "0", "--batch-size", "1", "-q"])
    assert rc == 143 and signal.getsignal(signal.SIGTERM) == before
    err = _errors(capsys)
    assert err[-1] == "facevision predict: terminated (SIGTERM)" and "interrupted" in err[-2]
    s = _summary(out)
    assert s["interrupted"] and [r["output"] for r in s["inputs"]] == ["p0"]
    assert sorted(p.name for p in out.iterdir()) == ["p0", "summary.json"]  # no lock, no temporary left
