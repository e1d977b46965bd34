"""Issue #12 (throughput) of ``facevision predict``: writer processes and threads give the serial path's files and
lose nothing when one write fails, a writer process that dies fails only its input (and is replaced), ``--outputs`` writes exactly the chosen files, ``--shard K/N`` covers every input exactly
once, the inference network's disk cache (ONNX) is exact, keyed and refuses files it cannot trust, the OBJ text is
np.savetxt's, the progress bar and ``-v`` lines.

Same stubbed detector and known maps as test_predict_cli (MediaPipe does not fire on generated images).
"""
from __future__ import annotations

import errno
import io
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facevision.predict.jobs as jobs
from facevision.cli import main
from facevision.predict.out_folder import output_names
from facevision.predict.outputs import (DEFAULT_OUTPUTS, OUTPUT_FILES, PHOTO_FILES, PHOTO_OUTPUT_FILES, OutputConfig,
                                       parse_outputs)
from facevision.predict.predictor import PredictConfig, Predictor
from facevision.predict.runner import BatchConfig, run_batch
from facevision.predict.shards import (ShardMergeError, merge_shard_summaries, parse_shard, shard_of,
                                       shard_summary_name)
from facevision.predict.writer import WriterConfig, open_writer
from support.outputs import output_files as _files
from support.stub_detector import StubDetector as _StubDetector
from support.synthetic import fixed_maps_model, render_reference


@pytest.fixture(scope="module")
def predictor():
    f = render_reference(128, 10, 0, 0)
    return _StubDetector(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(batch_size=3))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("photos")
    out = []
    for i in range(7):
        arr = np.random.default_rng(i).integers(150, 255, (200, 180, 3)).astype(np.uint8)
        Image.fromarray(arr).save(d / f"p{i}.jpg")
        out.append(d / f"p{i}.jpg")
    return out


# ----------------------------------------------------------------------------- writer processes and threads
@pytest.mark.parametrize("kind", ["process", "thread"])
def test_writer_pool_gives_the_serial_files(predictor, photos, tmp_path, kind):
    serial = run_batch(predictor, [str(p) for p in photos], tmp_path / "serial",
                       BatchConfig(log=False, writer=WriterConfig(workers=0)))
    pooled = run_batch(predictor, [str(p) for p in photos], tmp_path / kind,
                       BatchConfig(log=False, writer=WriterConfig(workers=3, max_pending=2, kind=kind)))
    assert serial["counts"] == pooled["counts"] == {"ok": 7, "failed": 0, "skipped": 0}
    a, b = _files(tmp_path / "serial"), _files(tmp_path / kind)
    per_photo = 2 + len(PHOTO_FILES)
    assert len(a) == 7 * (sum(len(v) for v in OUTPUT_FILES.values()) + per_photo)  # + result.json, image.json, overlay
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert [r["input"] for r in serial["inputs"]] == [r["input"] for r in pooled["inputs"]]  # input order kept
    assert serial["inputs"] == pooled["inputs"]  # the same records in summary.json


def _assert_only_p3_lost(out: Path, photos: list[Path], summary: dict, reason: str, err: str) -> None:
    """p3 failed with ``reason`` in summary.json and one stderr line; nothing of it left; every other input complete."""
    assert summary["counts"] == {"ok": 6, "failed": 1, "skipped": 0}
    on_disk = json.loads((out / "summary.json").read_text())
    bad = [r for r in on_disk["inputs"] if r["status"] == "failed"]
    assert len(bad) == 1 and bad[0]["output"] == "p3" and reason in bad[0]["reason"] and bad[0]["faces"] == []
    assert not (out / "p3").exists() or list((out / "p3").iterdir()) == []
    for p in photos:
        if p.stem != "p3":
            face = out / p.stem / "face0"
            names = json.loads((face / "result.json").read_text())["files"]
            assert all((face / n).is_file() and (face / n).stat().st_size > 0 for n in names)
            assert sorted(n for n in os.listdir(face)) == sorted(names)  # complete, no temporaries
            assert json.loads((out / p.stem / "image.json").read_text())["status"] == "ok"
    lines = [e for e in err.splitlines() if e.strip()]
    assert len(lines) == 1 and "p3.jpg" in lines[0] and reason in lines[0]


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_one_failing_write_loses_no_other_photo(predictor, photos, tmp_path, monkeypatch, capsys, kind):
    out = tmp_path / "out"
    real = os.write

    def write(fd, data):  # the disk is full for p3's files only (inherited by the forked writer processes), which
        if f"{out}/.p3." in os.readlink(f"/proc/self/fd/{fd}"):  # are written in p3's temporary folder .p3.<pid>-*.tmp
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    s = run_batch(predictor, [str(p) for p in photos], out,
                  BatchConfig(log=False, writer=WriterConfig(workers=3, kind=kind)))
    _assert_only_p3_lost(out, photos, s, "disk full", capsys.readouterr().err)


def test_an_unwritable_target_fails_only_its_photo_in_the_process_pool(predictor, photos, tmp_path, capsys):
    """p3's face folder cannot be created (a file stands where OUT/p3/face0 must go): p3 fails, 6 complete."""
    out = tmp_path / "out"
    (out / "p3").mkdir(parents=True)
    (out / "p3" / "image.json").write_text(json.dumps({"source": str(photos[3].resolve()), "status": "failed"}))
    (out / "p3" / "face0").write_text("in the way")
    s = run_batch(predictor, [str(p) for p in photos], out,
                  BatchConfig(log=False, writer=WriterConfig(workers=2, kind="process")))
    assert s["counts"] == {"ok": 6, "failed": 1, "skipped": 0}
    bad = [r for r in s["inputs"] if r["status"] == "failed"]
    assert [r["output"] for r in bad] == ["p3"] and "cannot write outputs" in bad[0]["reason"]
    assert all((out / p.stem / "face0" / "result.json").is_file() for p in photos if p.stem != "p3")
    err = [e for e in capsys.readouterr().err.splitlines() if e.strip()]
    assert len(err) == 1 and "p3.jpg" in err[0]


def test_a_writer_process_that_dies_fails_only_its_photo(predictor, photos, tmp_path, monkeypatch, capsys):
    """The worker finishing p3 is killed (SIGKILL, as the OOM killer does) after writing p3's face files and one
    temporary: p3 is failed with the reason, its files are removed, a new worker finishes the rest."""
    import signal

    out = tmp_path / "out"
    real = jobs.write_face

    def write_face(face_dir, *a, **kw):
        data = real(face_dir, *a, **kw)
        if f"{out}/.p3." in f"{face_dir}/":  # p3's folder is written as a whole, in .p3.<pid>-<random>.tmp
            (Path(face_dir) / f".crop.{os.getpid()}-abcdefgh.tmp.png").write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
        return data

    monkeypatch.setattr(jobs, "write_face", write_face)
    t = time.monotonic()
    s = run_batch(predictor, [str(p) for p in photos], out,
                  BatchConfig(log=False, writer=WriterConfig(workers=2, kind="process")))
    assert time.monotonic() - t < 120  # no hang
    _assert_only_p3_lost(out, photos, s, "writer process was killed by SIGKILL", capsys.readouterr().err)


def test_a_single_input_starts_no_writer_pool(predictor, photos, tmp_path, monkeypatch):
    """One photo is finished in the calling thread, by the predictor's own postprocess: no process to start."""
    import facevision.predict.writer as writer

    def no_pool(*a, **kw):
        raise AssertionError("a pool was started for a single input")

    monkeypatch.setattr(writer, "ProcessPool", no_pool)
    monkeypatch.setattr(writer, "ThreadPool", no_pool)
    calls = []

    def postprocess(self, *a, **kw):
        calls.append(1)
        return Predictor.postprocess(self, *a, **kw)

    monkeypatch.setattr(type(predictor), "postprocess", postprocess)
    s = run_batch(predictor, [str(photos[0])], tmp_path / "o", BatchConfig(log=False))
    assert s["counts"]["ok"] == 1 and calls == [1]


def _pool_job(state, task):
    """A writer task for the pool tests: sleeps a little; task 2 raises, task "die" ends its process."""
    import signal

    time.sleep(0.01)
    if task == 2:
        raise RuntimeError("boom")
    if task == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    torch = sys.modules.get("torch")
    return state, task, os.getpid(), None if torch is None else torch.get_num_threads()


@pytest.mark.parametrize("kind", ["process", "thread", "inline"])
def test_writer_pool_is_bounded_and_reports_every_task(kind):
    lock = threading.Lock()
    results: dict[int, tuple] = {}
    lost: dict[int, str] = {}
    submitted = 0
    most = 0

    def on_result(key, result):
        with lock:
            results[key] = result

    def on_lost(key, reason):
        with lock:
            lost[key] = reason

    config = WriterConfig(workers=0 if kind == "inline" else 2, max_pending=3,
                          kind="thread" if kind == "inline" else kind)
    with open_writer(config, _pool_job, on_result, on_lost, setup=lambda: "state", tasks=10) as pool:
        for i in range(10):
            pool.submit(i, i)
            submitted += 1
            with lock:
                most = max(most, submitted - len(results) - len(lost))
    assert most <= 3  # never more than max_pending queued or running
    assert sorted(results) == [i for i in range(10) if i != 2] and lost == {2: "RuntimeError: boom"}
    assert {r[0] for r in results.values()} == {"state"}
    if kind == "process":  # workers are other processes, and torch (imported here) runs on one thread there
        assert os.getpid() not in {r[2] for r in results.values()}
        assert {r[3] for r in results.values()} <= {None, 1}
    with pytest.raises(ValueError):
        WriterConfig(workers=-1)
    with pytest.raises(ValueError):
        WriterConfig(kind="fibres")
    with pytest.raises(ValueError):
        WriterConfig(start_timeout_s=0)


def test_process_pool_replaces_a_dead_worker_and_reports_its_task():
    results: dict = {}
    lost: dict = {}
    config = WriterConfig(workers=1, max_pending=2, kind="process")
    with open_writer(config, _pool_job, results.__setitem__, lost.__setitem__, setup=lambda: "s", tasks=5) as pool:
        first = pool.pids
        for key, task in enumerate([0, "die", 1, 3, 4]):
            pool.submit(key, task)
    assert sorted(results) == [0, 2, 3, 4] and list(lost) == [1]
    assert "killed by SIGKILL" in lost[1] and "while finishing this input" in lost[1]
    assert {r[2] for r in results.values()} - set(first)  # a new worker finished the later tasks


def _run_pool_in_thread(config: WriterConfig, setup, tasks: list) -> tuple[dict, dict, float]:
    """Submit ``tasks`` to a pool and close it, in a thread that must finish within 60 s (a hang fails)."""
    results: dict = {}
    lost: dict = {}
    errors: list = []

    def run() -> None:
        try:
            with open_writer(config, _pool_job, results.__setitem__, lost.__setitem__, setup=setup,
                             tasks=len(tasks)) as pool:
                for key, task in enumerate(tasks):
                    pool.submit(key, task)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t0 = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the writer pool hung"
    assert not errors, errors
    return results, lost, time.monotonic() - t0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="writer processes are forked on Linux only")
def test_a_writer_whose_set_up_hangs_is_ended_and_replaced(tmp_path):
    """One worker hangs in its set-up (as a process forked while another thread held a lock can): it gets no
    task, is ended after start_timeout_s and replaced; every input is written."""
    marker = tmp_path / "first"

    def setup():
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return "s"
        time.sleep(3600)  # the first worker to start never gets ready

    config = WriterConfig(workers=2, max_pending=4, kind="process", start_timeout_s=4.0)  # ample on a loaded machine
    results, lost, _ = _run_pool_in_thread(config, setup, [0, 1, 3, 4, 5, 6])
    assert sorted(results) == [0, 1, 2, 3, 4, 5] and not lost


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="writer processes are forked on Linux only")
@pytest.mark.parametrize("how", ["hangs", "crashes"])
def test_writers_that_never_start_fail_every_input_with_the_reason(how):
    def setup():
        if how == "hangs":
            time.sleep(3600)
        os._exit(3)

    config = WriterConfig(workers=2, max_pending=3, kind="process", start_timeout_s=1.0)
    results, lost, took = _run_pool_in_thread(config, setup, [0, 1, 3, 4])
    assert not results and sorted(lost) == [0, 1, 2, 3]
    reason = "set-up gave no sign within 1 s" if how == "hangs" else "exited unexpectedly (exit code 3)"
    assert all("writer processes do not start" in r and reason in r for r in lost.values()), lost
    assert took < 30


def _gone(pid: int) -> bool:
    """The process has ended (absent, or a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="writer processes are forked on Linux only")
def test_writer_processes_end_when_the_calling_process_is_killed(tmp_path):
    """predict killed (SIGKILL, the out-of-memory killer) mid-batch: its writer processes do not live on."""
    import signal
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import sys, time
        from facevision.predict.writer import WriterConfig, open_writer
        def job(state, task):
            time.sleep(60)
        pool = open_writer(WriterConfig(workers=2, kind="process"), job, print, print, setup=lambda: None, tasks=4)
        pool.submit(0, 0)
        pool.submit(1, 1)
        print(" ".join(str(p) for p in pool.pids), flush=True)
        time.sleep(60)
    """)
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and not any(_gone(p) for p in pids)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(p) for p in pids), "writer processes outlived the killed calling process"
    finally:
        proc.kill()
        proc.stdout.close()


# ----------------------------------------------------------------------------- --outputs
def test_parse_outputs():
    assert parse_outputs("all") == DEFAULT_OUTPUTS
    assert parse_outputs("maps") == {"depth", "corr", "mask"}
    assert parse_outputs("mesh, preview") == {"ply", "obj", "preview"}
    with pytest.raises(ValueError, match="unknown output 'stl'"):
        parse_outputs("depth,stl")
    with pytest.raises(ValueError, match="no output"):
        parse_outputs(" , ")
    assert not OutputConfig(outputs=parse_outputs("maps")).needs_mesh
    assert OutputConfig(outputs=parse_outputs("preview")).needs_mesh


@pytest.mark.parametrize("chosen", ["depth,corr,mask", "obj", "ply,fit_mesh", "preview,crop", "all"])
def test_outputs_writes_exactly_the_chosen_files(predictor, photos, tmp_path, chosen):
    outputs = parse_outputs(chosen)
    s = run_batch(predictor, [str(photos[0])], tmp_path / "o",
                  BatchConfig(log=False, output=OutputConfig(outputs=outputs)))
    assert s["counts"]["ok"] == 1 and s["outputs"] == sorted(outputs)
    face = tmp_path / "o" / "p0" / "face0"
    want = sorted([f for o in outputs if o in OUTPUT_FILES for f in OUTPUT_FILES[o]] + ["result.json"])
    assert sorted(os.listdir(face)) == want
    assert sorted(json.loads((face / "result.json").read_text())["files"]) == want
    # a photo's own files (overlay.jpg) sit beside image.json, once per photo
    photo_want = [f for o in outputs if o in PHOTO_OUTPUT_FILES for f in PHOTO_OUTPUT_FILES[o]]
    assert sorted(os.listdir(face.parent)) == sorted(["face0", "image.json"] + photo_want)


def test_cli_outputs_maps_skips_the_mesh_and_bad_values_are_one_line(photos, tmp_path, capsys, random_checkpoint):
    rc = main(["predict", str(photos[0]), "-o", str(tmp_path / "o"), "--outputs", "depth,nope", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--outputs: unknown output 'nope'" in err and len(err.strip().splitlines()) == 1
    rc = main(["predict", str(photos[0]), "-o", str(tmp_path / "o"), "--shard", "3/2"])
    assert rc == 2 and "1 <= K <= N" in capsys.readouterr().err


# ----------------------------------------------------------------------------- --shard K/N
def _names(n: int) -> list[str]:
    return [f"person_{i:04d}" for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_every_input_is_in_exactly_one_shard(n):
    names = _names(300)
    shards = [[x for x in names if shard_of(x, n) == k] for k in range(1, n + 1)]
    assert sorted(x for s in shards for x in s) == sorted(names)  # each exactly once
    assert all(len(s) > 300 / n * 0.6 for s in shards)  # roughly even
    again = [[x for x in reversed(names) if shard_of(x, n) == k] for k in range(1, n + 1)]
    assert [sorted(s) for s in again] == [sorted(s) for s in shards]  # independent of input order
    assert shard_of("person_0001", 4) == shard_of("person_0001", 4)


def test_parse_shard():
    assert parse_shard("2/8") == (2, 8) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/3", "4/3", "a/b", "3", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_shards_write_disjoint_folders_and_merge(predictor, photos, tmp_path, capsys):
    paths = [str(p) for p in photos]
    whole = run_batch(predictor, paths, tmp_path / "whole", BatchConfig(log=False))
    out = tmp_path / "out"
    n = 3
    seen: list[str] = []
    for k in (2, 3, 1):  # any order
        assert not (out / "summary.json").exists()  # merged only once all shards are in
        s = run_batch(predictor, list(reversed(paths)), out, BatchConfig(log=False, shard=(k, n)))
        assert (out / shard_summary_name(k, n)).is_file()
        seen += [r["output"] for r in s["inputs"]]
    assert sorted(seen) == sorted(r["output"] for r in whole["inputs"])  # every input exactly once
    merged = json.loads((out / "summary.json").read_text())
    assert merged["counts"] == whole["counts"] and merged["faces"] == whole["faces"] and merged["shards"] == n
    assert sorted(r["output"] for r in merged["inputs"]) == sorted(seen)
    assert _files(out).keys() == _files(tmp_path / "whole").keys()
    # the command merges too, and says what is missing
    (out / "summary.json").unlink()
    assert main(["merge-shards", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["counts"] == whole["counts"]
    (out / shard_summary_name(2, n)).unlink()
    assert main(["merge-shards", str(out)]) == 1
    assert "missing [2]" in capsys.readouterr().err
    with pytest.raises(ShardMergeError):
        merge_shard_summaries(tmp_path / "whole")


def test_shard_names_do_not_depend_on_out(photos, tmp_path):
    keys = output_names(photos)
    assert keys == output_names(list(photos)) and keys == [p.stem for p in photos]


# ----------------------------------------------------------------------------- network cache
def test_network_cache_is_exact_keyed_and_refuses_foreign_files(random_checkpoint, tmp_path, monkeypatch):
    import shutil

    import torch

    from facevision.model import inference_cache as ic
    from facevision.model.checkpoint import load_generator, save_generator
    from facevision.model.onnx_network import OnnxNetwork

    monkeypatch.setenv(ic.CACHE_ENV, str(tmp_path / "cache"))
    ckpt = tmp_path / "g.safetensors"
    shutil.copy(random_checkpoint, ckpt)
    eager = load_generator(ckpt).eval()
    assert ic.load_cached(ckpt) is None  # nothing cached yet
    first = ic.inference_network(ckpt, lambda: load_generator(ckpt), threads=1)
    assert isinstance(first, OnnxNetwork)
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".onnx"
    assert oct(os.stat(tmp_path / "cache").st_mode & 0o777) == "0o700"
    loaded = ic.inference_network(ckpt, lambda: pytest.fail("the cache should have answered"))
    assert loaded.config.image_size == first.config.image_size == 128
    x = torch.rand(2, 3, 128, 128)
    with torch.inference_mode():
        want = eager(x)
    for a, b, c in zip(first(x.numpy()), loaded(x.numpy()), want):
        assert np.array_equal(a, b) and np.allclose(a, c.numpy(), atol=1e-4)
    # another checkpoint at the same path: a new key, the stale file (of either format) is replaced
    old_format = tmp_path / "cache" / f"generator-{ic._path_id(ckpt)}-{'0' * 32}.pt"
    old_format.write_bytes(b"a TorchScript file of the cache's first format")
    g = load_generator(ckpt)
    with torch.no_grad():
        next(g.parameters()).add_(1.0)
    save_generator(ckpt, g)
    assert ic.load_cached(ckpt) is None
    ic.inference_network(ckpt, lambda: load_generator(ckpt))
    files2 = list((tmp_path / "cache").iterdir())
    assert len(files2) == 1 and files2 != files
    # a file others may write, a corrupt one, or one recording another key is not loaded
    os.chmod(files2[0], 0o666)
    assert ic.load_cached(ckpt) is None
    os.chmod(files2[0], 0o644)
    assert ic.load_cached(ckpt) is not None
    os.chmod(tmp_path / "cache", 0o777)  # a folder others may write
    assert ic.load_cached(ckpt) is None
    os.chmod(tmp_path / "cache", 0o700)
    real = tmp_path / "real.onnx"  # a link in the file's place is not followed
    files2[0].rename(real)
    files2[0].symlink_to(real)
    assert ic.load_cached(ckpt) is None
    files2[0].unlink()
    real.rename(files2[0])
    assert ic.load_cached(ckpt) is not None
    good = files2[0].read_bytes()
    files2[0].write_bytes(b"not an ONNX graph")
    assert ic.load_cached(ckpt) is None
    files2[0].write_bytes(good.replace(ic.cache_key(ckpt).encode(), b"f" * 32))
    assert ic.load_cached(ckpt) is None
    monkeypatch.setenv(ic.CACHE_ENV, "off")
    assert ic.cache_dir() is None and ic.store(ckpt, good) is None


def test_network_falls_back_to_torchscript_without_onnx_runtime(random_checkpoint, tmp_path, monkeypatch):
    """No onnxruntime (or an export that fails): the TorchScript-frozen network, nothing cached, same maps."""
    import builtins

    import torch

    from facevision.model import inference_cache as ic
    from facevision.model.checkpoint import load_generator

    monkeypatch.setenv(ic.CACHE_ENV, str(tmp_path / "cache"))
    real_import = builtins.__import__

    def no_ort(name, *args, **kwargs):
        if name.split(".")[0] in ("onnxruntime", "onnx"):
            raise ImportError(f"No module named {name!r} (test)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    net = ic.inference_network(random_checkpoint, lambda: load_generator(random_checkpoint))
    assert isinstance(net, torch.jit.ScriptModule) and net.config.image_size == 128
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    x = torch.rand(1, 3, 128, 128)
    with torch.inference_mode():
        for a, b in zip(net(x), load_generator(random_checkpoint).eval()(x)):
            assert torch.allclose(a, b, atol=1e-4)


def test_onnx_and_torch_predictors_give_the_same_maps(random_checkpoint, monkeypatch):
    """The ONNX Runtime path (numpy in, numpy out) decodes to the eager torch model's maps, mirror averaging too;
    a bad graph is a ValueError naming the problem."""
    from facevision.model.checkpoint import load_generator
    from facevision.model.onnx_network import OnnxNetwork, export_onnx
    from facevision.predict.predictor import PredictConfig, Predictor

    eager = load_generator(random_checkpoint)
    onnx_net = OnnxNetwork(export_onnx(eager, 128, {"image_size": 128}), threads=1)
    crops = np.random.default_rng(0).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    for mirror in (False, True):
        cfg = PredictConfig(freeze=False, mirror_average=mirror, batch_size=2)
        want = Predictor(load_generator(random_checkpoint), config=cfg, device="cpu").run_network(crops)
        p = Predictor(onnx_net, config=cfg, device="cpu")
        assert p.numpy_network and p.size == 128
        got = p.run_network(crops)
        assert [g.shape for g in got] == [w.shape for w in want] and [g.dtype for g in got] == [w.dtype for w in want]
        assert np.allclose(got[0], want[0], atol=2e-3) and np.allclose(got[1], want[1], atol=1e-4)
        assert (got[2] == want[2]).mean() > 0.999
    with pytest.raises(ValueError, match="network input must be"):
        onnx_net(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="ONNX Runtime cannot load"):
        OnnxNetwork(b"garbage")


def test_auto_device_needs_no_torch_without_a_gpu_driver(monkeypatch):
    import sys

    from facevision.model import device

    monkeypatch.setattr(device.os.path, "exists", lambda p: False)
    monkeypatch.setattr(device.sys, "platform", "linux")
    assert not device.gpu_driver_present()
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # restored by monkeypatch
    assert device.resolve_device("auto") == "cpu" and "torch" not in sys.modules


# ----------------------------------------------------------------------------- OBJ text
def test_obj_text_is_what_savetxt_wrote():
    from meshing import MeshConfig, mesh_from_maps
    from meshing.io import obj_text
    from meshing.refine import vertex_normals

    f = render_reference(128, 10, 0, 0)
    mesh = mesh_from_maps(f.depth, f.mask, None, f.corr, MeshConfig())
    mesh.uvs = np.random.default_rng(0).random((mesh.n_vertices, 2)).astype(np.float32)

    def rows(arr, fmt):
        buf = io.StringIO()
        np.savetxt(buf, arr, fmt=fmt)
        return buf.getvalue()

    v = np.asarray(mesh.vertices, np.float64)
    fc = np.asarray(mesh.faces, np.int64) + 1
    n = rows(vertex_normals(v, fc - 1), "vn %.5f %.5f %.5f")
    text = obj_text(mesh, "m")
    assert rows(v, "v %.4f %.4f %.4f") + n in text or rows(np.hstack([v, mesh.colors]),
                                                          "v %.4f %.4f %.4f %.4f %.4f %.4f") + n in text
    assert text.endswith(rows(np.repeat(fc, 3, axis=1), "f %d/%d/%d %d/%d/%d %d/%d/%d"))
    assert rows(np.asarray(mesh.uvs, np.float64), "vt %.6f %.6f") in text
    assert obj_text(mesh).endswith(rows(np.repeat(fc, 2, axis=1), "f %d//%d %d//%d %d//%d"))


# ----------------------------------------------------------------------------- progress and -v
def test_per_photo_lines_only_with_log(predictor, photos, tmp_path, capsys):
    run_batch(predictor, [str(p) for p in photos[:2]], tmp_path / "a", BatchConfig(log=False, progress=True))
    assert capsys.readouterr().out == ""  # the bar is on stderr, and only on a terminal
    run_batch(predictor, [str(p) for p in photos[:2]], tmp_path / "b", BatchConfig(log=True))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all("1 face(s) ->" in line for line in out)


def test_network_batches_span_photos_while_writers_finish_earlier_ones(photos, tmp_path):
    """The --device cuda path's logic, on CPU: faces of several photos share one network call of --batch-size,
    and writer threads finish earlier photos while later ones are run."""
    f = render_reference(128, 10, 0, 0)
    calls: list[int] = []
    finishing: list[int] = []

    class Counting(_StubDetector):
        def run_network(self, crops, batch_size=None):
            calls.append(len(crops))
            finishing.append(busy[0])
            return super().run_network(crops, batch_size)

        def postprocess(self, *a, **kw):
            with lock:
                busy[0] += 1
            time.sleep(0.05)  # a slow writer: the next batch is run meanwhile
            with lock:
                busy[0] -= 1
            return super().postprocess(*a, **kw)

    busy = [0]
    lock = threading.Lock()
    p = Counting(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(batch_size=3))
    s = run_batch(p, [str(x) for x in photos], tmp_path / "o", BatchConfig(log=False, writer=WriterConfig(workers=2)))
    assert s["counts"]["ok"] == 7 and calls == [3, 3, 1]
    assert max(finishing) > 0  # a network call ran while a writer was finishing an earlier photo
