"""`facevision prepare lfw`: drop accounting, resumability, manifest and summary."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_prep.dataset_format import read_manifest, read_sample
from data_prep.prepare import RECORDS_NAME, PrepareConfig, prepare_lfw
from facevision.cli import main as cli_main


def _make_bad_tree(root: Path) -> None:
    (root / "Corrupt_Person").mkdir(parents=True)
    good = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()
    (root / "Corrupt_Person" / "Corrupt_Person_0001.jpg").write_bytes(good[: len(good) // 3])  # truncated JPEG
    (root / "Text_Person").mkdir()
    (root / "Text_Person" / "Text_Person_0001.jpg").write_text("this is not an image\n")
    (root / "Text_Person" / "notes.txt").write_text("a non-image file in the tree\n")
    (root / "Empty_Person").mkdir()
    yy, xx = np.mgrid[:120, :100]
    faceless = np.dstack([xx * 2, yy * 2, (xx + yy)]).astype(np.uint8)  # smooth gradient, no face
    cv2.imwrite(str(root / "Empty_Person" / "Empty_Person_0001.png"), faceless)


def test_drop_accounting_on_bad_files(tmp_path):
    root, out = tmp_path / "lfw", tmp_path / "ds"
    _make_bad_tree(root)
    summary = prepare_lfw(root, out, PrepareConfig(workers=1, progress=False))
    assert summary["files_listed"] == 4
    assert summary["dropped"] == {"unreadable": 3, "no_face": 1, "multiple_faces": 0, "labeler_failure": 0}
    assert summary["images_read"] == 1 and summary["kept"] == 0
    recs = [json.loads(l) for l in (out / RECORDS_NAME).read_text().splitlines()]
    msgs = {r["source"]: r["message"] for r in recs}
    assert "Corrupt_Person_0001.jpg" in msgs["Corrupt_Person/Corrupt_Person_0001.jpg"]
    assert "notes.txt" in msgs["Text_Person/notes.txt"]
    manifest = read_manifest(out)
    assert manifest["samples"] == [] and manifest["summary"]["dropped_total"] == 4
    # resumed: dropped photos are not redone
    again = prepare_lfw(root, out, PrepareConfig(workers=1, progress=False))
    assert again["processed_this_run"] == 0 and again["dropped"] == summary["dropped"]


def test_cli_errors_are_clear(tmp_path, capsys):
    assert cli_main(["prepare", "lfw", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["prepare", "lfw", str(tmp_path), "-o", str(tmp_path / "o"), "--labeler", "3ddfa-v2"]) == 2
    assert "--tddfa-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # the old importer's labeler name is gone
        cli_main(["prepare", "lfw", str(tmp_path), "-o", str(tmp_path / "o"), "--labeler", "3ddfa"])
    assert exc.value.code == 2 and "invalid choice: '3ddfa'" in capsys.readouterr().err
    assert cli_main(["prepare", "lfw", str(tmp_path), "-o", str(tmp_path / "o"), "--z-stretch", "0"]) == 2
    assert "--z-stretch" in (err := capsys.readouterr().err) and "(0, 10]" in err and len(err.splitlines()) == 1
    assert cli_main(["prepare", "lfw", str(tmp_path), "-o", str(tmp_path / "o"), "--size", "8"]) == 2
    assert "--size must be at least 16, got 8" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.lfw
def test_real_photos_kept_split_and_resumed(lfw_root, tmp_path):
    root, out = tmp_path / "lfw", tmp_path / "ds"
    _make_bad_tree(root)
    for rel in ("AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"):
        (root / rel).parent.mkdir(exist_ok=True)
        shutil.copy(lfw_root / rel, root / rel)
    # two faces side by side -> "more than one face"
    a = cv2.imread(str(lfw_root / "AJ_Cook/AJ_Cook_0001.jpg"))
    b = cv2.imread(str(lfw_root / "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"))
    (root / "Two_People").mkdir()
    cv2.imwrite(str(root / "Two_People" / "Two_People_0001.jpg"), np.hstack([a, b]))

    assert cli_main(["prepare", "lfw", str(root), "-o", str(out), "--workers", "2", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropped"] == {"unreadable": 3, "no_face": 1, "multiple_faces": 1, "labeler_failure": 0}
    assert summary["kept"] == 2
    manifest = read_manifest(out)
    assert manifest["label_source"] == "mediapipe"
    assert manifest["correspondence_space"] == "facevision-reference-v1"
    assert sum(manifest["split_counts"].values()) == 2
    for s in manifest["samples"]:
        x0, y0, x1, y1 = s["crop_box"]
        assert x1 - x0 == y1 - y0 > 50
        sample = read_sample(out, s["id"])
        assert sample.image.shape == (128, 128, 3) and sample.mask.mean() > 0.15

    # resume: delete one sample file -> only that photo is redone
    victim = manifest["samples"][0]["id"]
    (out / "samples" / victim / "mask.png").unlink()
    again = prepare_lfw(root, out, PrepareConfig(workers=1, progress=False))
    assert again["processed_this_run"] == 1 and again["kept"] == 2


def test_z_stretch_is_refused_for_3ddfa_labels() -> None:
    """--z-stretch stretches Face Mesh's flat depth; a 3DMM's faces are to scale, so it is an error there
    (the config refuses itself when built)."""
    from data_prep.prepare import PrepareConfig

    with pytest.raises(ValueError, match="z_stretch"):
        PrepareConfig(labeler="3ddfa-v2", tddfa_dir="/nonexistent", z_stretch=1.17, progress=False)


def test_old_depth_scale_flag_warns_and_still_works(tmp_path, capsys, monkeypatch) -> None:
    """``prepare lfw --depth-scale`` is the old name of --z-stretch, kept one release: one warning line, same value."""
    import data_prep.prepare as prepare

    seen = []
    monkeypatch.setattr(prepare, "prepare_lfw", lambda root, out, cfg: seen.append(cfg) or {})
    monkeypatch.setattr(prepare, "format_summary", lambda summary: "")
    assert cli_main(["prepare", "lfw", str(tmp_path), "-o", str(tmp_path / "o"), "--depth-scale", "1.17"]) == 0
    err = capsys.readouterr().err
    assert seen[0].z_stretch == 1.17
    assert len(err.splitlines()) == 1 and "--depth-scale is deprecated" in err and "--z-stretch" in err


def test_label_config_refuses_bad_values() -> None:
    from data_prep.label_mediapipe import LabelConfig

    with pytest.raises(ValueError, match=r"LabelConfig\.min_mask_frac must be a fraction in \[0, 1\], got 2"):
        LabelConfig(min_mask_frac=2)
