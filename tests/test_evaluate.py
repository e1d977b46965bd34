"""``facevision evaluate`` on a tiny synthetic dataset with known answers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data_prep.dataset_format import Sample, read_sample, write_manifest, write_sample
from facevision.evaluate import EvaluateConfig, evaluate, landmark_nme, mean_maps
from facevision.maps.landmarks import landmarks_from_corr
from support.synthetic import fixed_maps_model, render_reference

S = 64
POSES = {"train": [(0, 0, 0), (15, 5, 0), (-15, 0, 5), (0, -10, -8), (25, 0, 0), (-5, 8, 10)],
         "test": [(10, 0, 0), (-20, 5, 0), (0, 0, 12)]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    entries = []
    i = 0
    for split, poses in POSES.items():
        for pose in poses:
            f = render_reference(S, *pose, scale=0.3 * S)
            image = np.full((S, S, 3), 90, np.uint8)
            image[0, 0, 0] = i  # lets the lookup network below find the sample's labels
            sid = f"s{i}"
            write_sample(root, sid, Sample(image=image, depth=f.depth, corr=f.corr, mask=f.mask))
            entries.append({"id": sid, "identity": f"p{i}", "split": split})
            i += 1
    write_manifest(root, entries, size=S, label_source="synthetic", correspondence_space="facevision-reference-v1")
    return root


def _lookup_model(root, n):
    """A 'perfect' network: returns the stored labels of the sample whose index is in pixel (0, 0)."""
    import torch
    from torch import nn

    samples = [read_sample(root, f"s{i}") for i in range(n)]
    depth = torch.tensor(np.stack([s.depth / S for s in samples]))[:, None].float()
    corr = torch.tensor(np.stack([s.corr for s in samples])).permute(0, 3, 1, 2).float()
    logits = torch.tensor(np.stack([np.where(s.mask, 10.0, -10.0) for s in samples]))[:, None].float()

    class Lookup(nn.Module):
        def forward(self, x):
            idx = torch.round(x[:, 0, 0, 0] * 255).long()
            return depth[idx], corr[idx], logits[idx]

    return Lookup()


def test_perfect_model_scores_zero_error(dataset):
    res = evaluate(dataset, _lookup_model(dataset, 9), EvaluateConfig(batch_size=2))
    m = res["model"]
    assert res["samples"] == 3
    assert m["depth_mae_px"] < 1e-3 and m["corr_mae"] < 1e-4 and m["mask_iou"] == 1.0
    # NME of identical maps is 0 by construction; it means something because the label side reproduces the
    # renderer's true points (independent ground truth), checked here
    for k, pose in enumerate(POSES["test"]):
        s = read_sample(dataset, f"s{len(POSES['train']) + k}")
        truth = render_reference(S, *pose, scale=0.3 * S).landmarks68
        assert landmark_nme(landmarks_from_corr(s.corr, s.mask).points, truth) < 0.02, pose
    b = res["baseline_mean_maps"]
    assert b["depth_mae_px"] > 0.5 and b["mask_iou"] < 1.0 and b["landmark_nme"] > 0.01
    assert res["margins"]["beats_baseline_on_all"] and res["margins"]["depth_mae_px_reduction"] > 0.99


def test_mean_map_model_equals_the_baseline(dataset):
    mm = mean_maps(dataset, "train")
    mask = mm["mask_frac"] >= 0.5
    model = fixed_maps_model(np.where(mask, mm["depth"], 0), np.where(mask[..., None], mm["corr"], 0), mask)
    res = evaluate(dataset, model)
    for key in ("depth_mae_px", "corr_mae", "mask_iou", "landmark_nme"):
        assert res["model"][key] == pytest.approx(res["baseline_mean_maps"][key], abs=1e-4), key
    assert not res["margins"]["beats_baseline_on_all"]


def test_mean_maps_values_and_cache(dataset, monkeypatch):
    mm = mean_maps(dataset, "train")
    labels = [read_sample(dataset, f"s{i}") for i in range(6)]
    masks = np.stack([s.mask for s in labels])
    assert np.allclose(mm["mask_frac"], masks.mean(0))
    px = np.argwhere(masks.all(0))[0]
    assert mm["depth"][tuple(px)] == pytest.approx(np.mean([s.depth[tuple(px)] for s in labels]), abs=1e-4)
    assert (dataset / "mean_maps_train.npz").is_file()
    import facevision.evaluate as ev

    def boom(*a, **k):
        raise AssertionError("cache not used")

    monkeypatch.setattr(ev, "read_sample", boom)
    assert np.array_equal(mean_maps(dataset, "train")["depth"], mm["depth"])  # from the cache
    with pytest.raises(AssertionError):
        mean_maps(dataset, "train", limit=3)  # other samples -> recomputed


def test_landmark_nme_is_normalised_by_outer_eye_corners():
    lab = np.zeros((68, 2))
    lab[36], lab[45] = (0, 0), (50, 0)
    assert landmark_nme(lab + [5, 0], lab) == pytest.approx(0.1)


def test_cli_prints_a_table_and_json_on_request(dataset, tmp_path, capsys):
    import torch

    from facevision.cli import main
    from facevision.model.generator import DualUnetGenerator
    from facevision.model.checkpoint import save_generator

    torch.manual_seed(0)
    ckpt = save_generator(tmp_path / "g.safetensors", DualUnetGenerator())  # fully convolutional: any S % 32 == 0
    rc = main(["evaluate", "--data", str(dataset), "--checkpoint", str(ckpt), "--device", "cpu"])
    table = capsys.readouterr().out
    assert rc == 0 and not table.lstrip().startswith("{")  # people read a table by default (issue #13)
    for label in ("depth MAE (crop px)", "correspondence MAE", "mask IoU", "landmark NME", "mean-map baseline"):
        assert label in table, table
    assert "test split" in table and "3 samples" in table
    rc = main(["evaluate", "--data", str(dataset), "--checkpoint", str(ckpt), "--device", "cpu", "--json",
               "-o", str(tmp_path / "e.json")])
    out = json.loads(capsys.readouterr().out)
    depth_row = next(ln for ln in table.splitlines() if ln.startswith("depth MAE"))
    assert f"{out['model']['depth_mae_px']:.3f}" in depth_row and f"{out['baseline_mean_maps']['depth_mae_px']:.3f}" in depth_row
    assert rc == 0 and out["split"] == "test" and out["samples"] == 3
    assert set(out["model"]) >= {"depth_mae_px", "corr_mae", "mask_iou", "landmark_nme"}
    assert json.loads((tmp_path / "e.json").read_text())["model"] == out["model"]
    assert main(["evaluate", "--data", str(tmp_path / "none"), "--checkpoint", str(ckpt)]) == 1


def test_cli_refuses_a_checkpoint_of_another_space(dataset, tmp_path, capsys):
    """A checkpoint trained on maps of another correspondence space is not scored against these labels."""
    from facevision.cli import main
    from facevision.model.checkpoint import save_generator
    from facevision.model.generator import DualUnetGenerator

    ckpt = save_generator(tmp_path / "g8.safetensors", DualUnetGenerator(),
                          {"correspondence_space": "3ddfa-bfm4096-ncc"})
    assert main(["evaluate", "--data", str(dataset), "--checkpoint", str(ckpt), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "3ddfa-bfm4096-ncc" in err and "facevision-reference-v1" in err and str(ckpt) in err


def test_evaluate_config_refuses_bad_values_and_the_command_names_the_flag(dataset, tmp_path, capsys):
    from facevision.cli import main

    with pytest.raises(ValueError, match=r"EvaluateConfig\.batch_size must be at least 1, got 0"):
        EvaluateConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"EvaluateConfig\.mask_threshold .* got 1\.5"):
        EvaluateConfig(mask_threshold=1.5)
    # checked before any checkpoint is looked for: the missing file is not what is reported
    assert main(["evaluate", "--data", str(dataset), "--checkpoint", str(tmp_path / "none.safetensors"),
                 "--limit", "0"]) == 2
    assert capsys.readouterr().err.strip() == \
        "facevision evaluate: error: --limit must be at least 1 or None, got 0"
