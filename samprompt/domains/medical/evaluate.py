"""Scoring volume segmentation on a labelled folder: ``images/NAME.nii.gz`` + ``masks/NAME.nii.gz``.

Every non-zero value of a label volume is one object. Prompts are simulated
from it in the file's voxel space, as a user would give them (:data:`MODES`):

* ``key_box``: the tight box on the object's largest slice along the third axis, propagated;
* ``box3d``: the object's tight 3D box;
* ``points``: one positive point at the centre of that largest slice, propagated;
* ``oracle_box``: the true box on every slice (no propagation): the ceiling for ``key_box``.

Each mode reports 3D Dice and NSD (``tolerance`` mm) per object, per label and
mean; the report's top-level ``dice`` and ``nsd`` are ``key_box``'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import SampromptError, require
from ...simulate import center_point
from .intensity import choose_window
from .metrics import dice_3d, surface_dice
from .prompts import VolumeObject
from .propagate import PropagationSettings, oracle_segmentation, segment_volume
from .volume import is_nifti, load_volume, volume_name

MODES = ("key_box", "box3d", "points", "oracle_box")


def labelled_volumes(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, image, label volume) of a labelled folder, sorted by name."""
    folder = Path(folder)
    masks = {volume_name(p): p for p in sorted((folder / "masks").glob("*")) if is_nifti(p)}
    out = [(volume_name(p), p, masks[volume_name(p)]) for p in sorted((folder / "images").glob("*"))
           if is_nifti(p) and volume_name(p) in masks]
    return out


def has_volumes(folder: str | Path) -> bool:
    return any(is_nifti(p) for p in (Path(folder) / "images").glob("*"))


def simulate_objects(truth: np.ndarray) -> dict[str, list[VolumeObject]]:
    """Voxel-space prompts of each mode (but the oracle) for every label of a file-order label volume."""
    out: dict[str, list[VolumeObject]] = {m: [] for m in MODES[:3]}
    for lab in (int(v) for v in np.unique(truth) if v):
        m = truth == lab
        k = int(m.sum(axis=(0, 1)).argmax())
        ii, jj = np.nonzero(m[:, :, k])
        out["key_box"].append(VolumeObject(lab, "box", box=(int(ii.min()), int(jj.min()), int(ii.max()),
                                                             int(jj.max())), slice=k))
        idx = np.nonzero(m)
        out["box3d"].append(VolumeObject(lab, "box3d", box3d=tuple(float(f(i)) for f in (np.min, np.max)
                                                                     for i in idx)))
        x, y = center_point(m[:, :, k].T)  # (column, row) of the slice image = (i, j)
        out["points"].append(VolumeObject(lab, "points", points=((float(x), float(y), float(k)),), labels=(1,)))
    return out


def _score(pred: dict[int, np.ndarray], truth: np.ndarray, spacing, tolerance: float) -> dict[int, dict]:
    return {lab: {"dice": dice_3d(pred[lab], truth == lab), "nsd": surface_dice(pred[lab], truth == lab, spacing,
                                                                               tolerance)} for lab in pred}


def evaluate_volumes(
    seg,
    folder: str | Path,
    *,
    window: str = "auto",
    tolerance: float = 2.0,
    settings: PropagationSettings | None = None,
    modes: tuple[str, ...] = MODES,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Dice and NSD of each prompting mode on a labelled folder of volumes (see the module doc)."""
    require("nibabel", "medical")
    import nibabel as nib
    from tqdm.auto import tqdm

    items = labelled_volumes(folder)[:limit]
    if not items:
        raise SampromptError(f"no volume in {folder}/images has a label volume of the same name in {folder}/masks")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise SampromptError(f"unknown mode {bad[0]!r}; choose from {', '.join(MODES)}")
    per_volume, failed = [], {}
    # one step per volume and mode, so that the estimate comes after the first mode, not the first volume
    bar = tqdm(total=len(items) * len(modes), desc="eval volumes", unit="run", disable=not progress)
    for name, img_path, mask_path in items:
        bar.set_postfix_str(name)
        done_before = bar.n
        try:
            vol = load_volume(img_path)
            truth = np.asarray(nib.load(str(mask_path)).dataobj)
            if tuple(truth.shape) != vol.file_shape:
                raise SampromptError(f"label volume {mask_path.name} has shape {truth.shape}, the image {vol.file_shape}")
            truth = np.round(truth).astype(np.int64)
            win, why = choose_window(vol.data, window, vol.modality)
            spacing = tuple(float(v) for v in np.linalg.norm(vol.file_affine[:3, :3], axis=0))
            sims = simulate_objects(truth)
            row: dict = {"name": name, "window": why, "modes": {}}
            for mode in modes:
                if mode == "oracle_box":
                    truth_ras = {lab: vol.from_file_order(truth == lab) for lab in (o.label for o in sims["key_box"])}
                    ras = oracle_segmentation(seg, vol, truth_ras, win, settings, axis=vol.ras_axis_of(2))
                else:
                    ras = segment_volume(seg, vol, sims[mode], win, settings).masks
                pred = {lab: vol.to_file_order(m) for lab, m in ras.items()}
                row["modes"][mode] = _score(pred, truth, spacing, tolerance)
                bar.update(1)
            per_volume.append(row)
        except SampromptError as exc:
            failed[name] = str(exc)
            bar.update(len(modes) - (bar.n - done_before))
    bar.close()
    report: dict = {"volumes": len(per_volume), "tolerance_mm": tolerance, "modes": {}, "failed": failed}
    for mode in modes:
        scores = [s for row in per_volume for s in row["modes"][mode].values()]
        per_label: dict[str, dict] = {}
        for row in per_volume:
            for lab, s in row["modes"][mode].items():
                per_label.setdefault(str(lab), {"dice": [], "nsd": []})
                per_label[str(lab)]["dice"].append(s["dice"])
                per_label[str(lab)]["nsd"].append(s["nsd"])
        report["modes"][mode] = {
            "dice": float(np.mean([s["dice"] for s in scores])) if scores else None,
            "nsd": float(np.mean([s["nsd"] for s in scores])) if scores else None,
            "objects": len(scores),
            "per_label": {k: {m: float(np.mean(v[m])) for m in ("dice", "nsd")} | {"n": len(v["dice"])}
                          for k, v in sorted(per_label.items(), key=lambda kv: int(kv[0]))},
        }
    first = report["modes"][modes[0]]
    report["dice"], report["nsd"] = first["dice"], first["nsd"]
    if "key_box" in modes and "oracle_box" in modes and report["modes"]["oracle_box"]["dice"]:
        report["key_box_vs_oracle"] = report["modes"]["key_box"]["dice"] / report["modes"]["oracle_box"]["dice"]
    report["per_volume"] = per_volume
    return report


__all__ = ["MODES", "evaluate_volumes", "has_volumes", "labelled_volumes", "simulate_objects"]
