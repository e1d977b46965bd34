"""How much identity the labels of a 3DDFA-labelled dataset carry, by LFW pairs (the ceiling a network trained on
them meets): ``python tools/label_identity_pairs.py DATASET LFW_ROOT [--face-model NPZ] [--max-pairs N]``.

Scores the pairs whose photos both have a kept sample, with the protocol of ``facevision benchmark lfw-pairs``
(cosine, thresholds from the other folds), on four codes per photo:

- ``tddfa_shape``: the labeler's 40 shape coefficients (``label_fit.npz`` params 12:52), as stored;
- ``tddfa_shape_z``: the same, each coefficient divided by its standard deviation over the dataset;
- ``tddfa_shape_wccn``: the same, whitened by the within-person covariance of the train split's people
  (within-class covariance normalisation; learned on train people, so the ``unseen`` column is the fair one);
- ``model_id``: the face model's identity coefficients of the label shape (aligned to the reference, ridge
  least squares on identity + expression modes, unit prior): what a network with perfect maps and an exact
  fit would give.

Prints one JSON object: per code, accuracy over all pairs and over pairs of people outside the train split.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path, help="dataset folder from `facevision prepare lfw --tddfa-dir`")
    ap.add_argument("lfw_root", type=Path, help="LFW images_deepfunneled folder (pairs.txt in it or its parent)")
    ap.add_argument("--face-model", type=Path, default=None, help="face model npz (default DATASET/face_model.npz)")
    ap.add_argument("--max-pairs", type=int, default=None, help="the subset `benchmark lfw-pairs --max-pairs` scores")
    ap.add_argument("--ridge", type=float, default=0.05, help="prior weight of the model_id projection")
    args = ap.parse_args()

    from data_prep.build_face_model import _sample_points, align_to_reference
    from data_prep.dataset_format import read_label_fit
    from facevision.benchmark.lfw_pairs import (read_pairs, subset_pairs, train_identities,
                                                 verification_accuracy)
    from facevision.face.face_model import load_face_model
    from facevision.face.reference import load_reference

    manifest = json.loads((args.dataset / "manifest.json").read_text())
    reference = load_reference(args.dataset / "reference.npz")
    model = load_face_model(args.face_model or args.dataset / "face_model.npz")
    basis = np.concatenate([model.id_basis, model.exp_basis])
    solve = np.linalg.inv(basis @ basis.T + args.ridge * np.eye(len(basis))) @ basis
    n_id = len(model.id_basis)
    keys, people, shape40, ids = [], [], [], []
    for s in manifest["samples"]:
        fit = read_label_fit(args.dataset, s["id"])
        points = _sample_points(args.dataset, s["id"], len(reference.raw_vertices))
        if fit is None or points is None or s.get("view") not in (None, "original"):
            continue
        person, number = s["id"].rsplit("_", 1)
        keys.append((person, int(number)))
        people.append(s["identity"])
        shape40.append(np.asarray(fit["params"], np.float64)[12:52])
        raw = align_to_reference(points, reference) - model.mean
        ids.append((solve @ raw.reshape(-1))[:n_id])
    shape40, ids = np.stack(shape40), np.stack(ids)
    trained = train_identities(args.lfw_root)
    root = args.lfw_root
    pairs_file = next(p for p in (root / "pairs.txt", root.parent / "pairs.txt") if p.is_file())
    pairs = subset_pairs(read_pairs(pairs_file), args.max_pairs)
    unseen = [p for p in pairs if p.a[0] not in trained and p.b[0] not in trained]

    centred = shape40 - shape40.mean(0)
    groups: dict[str, list[int]] = defaultdict(list)
    for k, person in enumerate(people):
        if person in trained:
            groups[person].append(k)
    within = np.concatenate([centred[g] - centred[g].mean(0) for g in groups.values() if len(g) >= 2])
    whiten = np.linalg.cholesky(np.linalg.inv(within.T @ within / len(within)))
    codes = {"tddfa_shape": shape40, "tddfa_shape_z": centred / shape40.std(0), "tddfa_shape_wccn": centred @ whiten,
             "model_id": ids}
    out = {"dataset": str(args.dataset), "photos": len(keys), "pairs_file": str(pairs_file)}
    for name, c in codes.items():
        table = dict(zip(keys, c))
        a, u = verification_accuracy(pairs, table), verification_accuracy(unseen, table)
        out[name] = {"accuracy": a["accuracy"], "pairs": a["pairs"], "accuracy_unseen": u["accuracy"],
                     "pairs_unseen": u["pairs"]}
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
