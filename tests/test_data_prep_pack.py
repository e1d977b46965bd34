"""data_prep.pack: a Face Mesh-labelled dataset survives pack -> unpack with its labels re-rendered exactly."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facevision.face.codecs import DEPTH_BASE_PX
from data_prep.dataset_format import (DatasetFormatError, Sample, read_face_mesh, read_manifest, read_sample,
                                      sample_dir, write_face_mesh, write_manifest, write_sample)
from facevision.face.face_model import load_face_model
from data_prep.label_mediapipe import render_labels
from data_prep.pack import PackConfig, main, pack_dataset, unpack_dataset
from facevision.face.reference import load_reference
from support.synthetic import known_rotation

S = 128


def _toy_dataset(root: Path, n: int = 9) -> list[dict]:
    """n faces drawn from the shipped face model, posed, labelled as `prepare lfw` does, with smooth photos."""
    model, ref = load_face_model(), load_reference()
    rng = np.random.default_rng(5)
    samples = []
    for i in range(n):
        shape = model.shape(rng.normal(0, 1, model.n_id), rng.normal(0, 1, model.n_exp))
        rot = known_rotation(rng.uniform(-40, 40), rng.uniform(-15, 15), rng.uniform(-20, 20))
        up = rng.uniform(36, 44) * shape @ rot.T + [64.0, 66.0, 80.0]  # Y up
        verts = np.stack([up[:, 0], S - 1 - up[:, 1], up[:, 2]], 1)  # crop px: y down, z towards the camera
        depth, corr, mask = render_labels(verts, S, ref)
        assert mask.mean() > 0.2
        noise = cv2.GaussianBlur(rng.uniform(0, 255, (S, S, 3)).astype(np.float32), (0, 0), 3)
        image = np.clip(noise * 0.5 + np.linspace(40, 200, S)[None, :, None], 0, 255).astype(np.uint8)
        sid = f"person{i // 3}_{i % 3:04d}"
        write_sample(root, sid, Sample(image=image, depth=depth, corr=corr, mask=mask))
        write_face_mesh(root, sid, verts)
        samples.append({"id": sid, "identity": f"person{i // 3}", "split": ("train", "val", "test")[i // 3],
                        "source": f"{sid}.jpg", "crop_angle": 1.5})
    write_manifest(root, samples, S, "mediapipe", "facevision-reference-v1", summary={"kept": n})
    return samples


def test_pack_round_trip_restores_images_meshes_and_labels(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    samples = _toy_dataset(src)
    res = pack_dataset(src, tmp_path / "p.npz", PackConfig(splits=("train", "val")))
    assert res["samples"] == 6
    assert res["bytes"] / 6 < 8000  # vs about 60-80 KB of PNGs per sample
    assert main(["unpack", str(tmp_path / "p.npz"), str(out), "--workers", "2"]) == 0

    m = read_manifest(out)
    assert [(s["id"], s["identity"], s["split"], s["crop_angle"]) for s in m["samples"]] == \
        [(s["id"], s["identity"], s["split"], s["crop_angle"]) for s in samples[:6]]
    assert m["split_counts"] == {"train": 3, "val": 3, "test": 0} and m["label_source"] == "mediapipe"
    assert m["summary"] == {"kept": 9} and m["unpacked_from"]["mesh_steps_per_px"] == 8
    for s in samples[:6]:
        a, b = read_sample(src, s["id"]), read_sample(out, s["id"])
        va, vb = read_face_mesh(src, s["id"]), read_face_mesh(out, s["id"])
        assert np.abs(va - vb).max() <= 0.5 / 8 + 1e-3  # half a storage step
        psnr = 10 * np.log10(255.0 ** 2 / np.mean((a.image.astype(float) - b.image.astype(float)) ** 2))
        assert psnr > 30.0
        assert (a.mask != b.mask).mean() < 0.005  # only silhouette pixels may flip
        both = a.mask & b.mask
        # depth is re-based on the farthest face pixel, which sits on a steep silhouette and may flip:
        # equal up to a constant, and the base holds
        assert b.depth[b.mask].min() == pytest.approx(DEPTH_BASE_PX, abs=1 / 256)
        diff = a.depth[both] - b.depth[both]
        assert np.abs(diff - np.median(diff)).mean() < 0.05  # crop px
        assert np.abs(a.corr[both] - b.corr[both]).mean() < 0.002


def test_unpack_keeps_finished_samples_and_completes_the_rest(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _toy_dataset(src, n=3)
    pack_dataset(src, tmp_path / "p.npz")
    unpack_dataset(tmp_path / "p.npz", out, workers=1)
    kept = sample_dir(out, "person0_0000") / "depth.png"
    kept_stamp = kept.stat().st_mtime_ns
    (sample_dir(out, "person0_0001") / "mask.png").unlink()  # as a killed unpack leaves it
    unpack_dataset(tmp_path / "p.npz", out, workers=1)
    assert kept.stat().st_mtime_ns == kept_stamp
    assert read_sample(out, "person0_0001").mask.any()


def test_pack_refuses_a_sample_without_face_mesh_vertices(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _toy_dataset(src, n=3)
    (sample_dir(src, "person0_0002") / "face_mesh.npy").unlink()
    with pytest.raises(DatasetFormatError, match=r"person0_0002.*face_mesh\.npy"):
        pack_dataset(src, tmp_path / "p.npz")
    assert not (tmp_path / "p.npz").exists()


def test_unpack_names_a_damaged_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    _toy_dataset(src, n=3)
    pack_dataset(src, tmp_path / "p.npz")
    data = (tmp_path / "p.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    assert main(["unpack", str(tmp_path / "cut.npz"), str(tmp_path / "out")]) == 1
    assert "cut.npz: unreadable pack" in capsys.readouterr().err
    (tmp_path / "other.npz").write_bytes(b"")
    np.savez(tmp_path / "other.npz", header=np.frombuffer(json.dumps({"format": "x"}).encode(), np.uint8))
    with pytest.raises(DatasetFormatError, match="other.npz: not a facevision-pack"):
        unpack_dataset(tmp_path / "other.npz", tmp_path / "out2")


def test_pack_config_refuses_bad_values_and_the_command_exits_2(tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match=r"PackConfig\.splits must be some of train, val, test, got \('dev',\)"):
        PackConfig(splits=("dev",))
    with pytest.raises(SystemExit) as exc:
        main(["pack", str(tmp_path / "d"), str(tmp_path / "p.npz"), "--mesh-steps-per-px", "0"])
    assert exc.value.code == 2
    assert "PackConfig.mesh_steps_per_px must be at least 1, got 0" in capsys.readouterr().err
