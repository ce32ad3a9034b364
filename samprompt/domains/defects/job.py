"""One inspection category on the jobs engine: fit on the normal shots, then one work item per test image.

:meth:`DefectJob.prepare` (on the client, before any image) builds the map source
and the threshold:

* ``shots`` K >= 1: a :class:`~.anomaly.PatchCore` bank from the first K images of
  ``train/good`` (sorted by name). The threshold is the highest map value on
  the other ``train/good`` images (no detection on any normal validation image).
  Without such images, it is the highest value of leave-one-out maps of the shots
  (each shot scored against a bank of the others) when K >= 2. Otherwise it is
  the zero-shot default;
* ``shots`` 0: :class:`~.anomaly.MutualScoring` over the category's test
  images. The threshold is the default: the mean plus three standard deviations
  of all map values of the set (label-free; fine when defects cover a small
  part of the images).

Each item writes ``DEFECT_NAME_map.png`` (the map, colour-coded with the threshold at
mid-scale), ``DEFECT_NAME_labels.png`` (instances; 0 = normal), ``DEFECT_NAME_overlay.png``
and ``parts/DEFECT_NAME.npz`` (the map and masks, for the metrics); :meth:`finalize`
computes the category's metrics (``metrics.json``) and a browsable ``report.html``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ImageError
from ...jobs.items import WorkItem
from ...jobs.worker import JobSettings, compute_timed, write_timed
from ...jobs.writers import PARTS
from .data import Category
from .generate import DefectSettings, segment_defects


@dataclass
class DefectJob(JobSettings):
    """A category: ``shots`` normal images (0: zero-shot), feature ``layers`` and how maps become instances."""

    unit = "image"

    category: str = ""
    shots: int = 4
    shot_paths: list[str] = field(default_factory=list)
    validation_paths: list[str] = field(default_factory=list)
    layers: tuple[int, ...] = (2, 4)
    zoom: int = 2
    coreset: float = 0.1
    maps_dir: str | None = None  # a folder of DEFECT_NAME.npy maps from another detector
    align: str = "auto"  # pose alignment of parts: auto, on, off (see pose.py)
    max_false_alarm: float = 0.0  # the share of held-out good images the threshold may flag
    defects: DefectSettings = field(default_factory=DefectSettings)

    def prompts_json(self, item: WorkItem):
        return {"defect": item.meta.get("defect"), "mask": item.meta.get("mask")}

    def planned_outputs(self, item: WorkItem, out: Path) -> list[Path]:
        return [out / f"{item.id}{s}" for s in ("_map.png", "_labels.png", "_overlay.png")] + [
            out / PARTS / f"{item.id}.npz"]

    def job_outputs(self, out: Path) -> list[Path]:
        return [out / "metrics.json", out / "report.html"]

    # ------------------------------------------------------------- prepare
    def prepare(self, seg, items: list[WorkItem]) -> None:
        from ...images import to_rgb_uint8
        from .anomaly import MutualScoring, PatchFeatures
        from .model import DefectModel

        self._model = self._test_feats = self._settings = self._aligner = None
        if self.maps_dir:
            source = self._source(seg)
            maps = [source.score_named(i.id, to_rgb_uint8(i.input)) for i in items]
            self.threshold, self.threshold_rule = _default_threshold(maps)
        elif self.shots > 0:
            model = DefectModel.fit(seg, self.shot_paths, self.validation_paths, max_false_alarm=self.max_false_alarm,
                                    layers=self.layers, zoom=self.zoom, coreset=self.coreset, align=self.align,
                                    settings=self.defects, category=self.category)
            model.seg = None  # the job travels to Dask workers; each brings its own Segmenter
            self._model = model
            self._settings = model.settings  # what the model decided (SAM on aligned parts or not)
            if model.threshold is None:
                maps = [model.source(seg).score(to_rgb_uint8(i.input)) for i in items]
                self.threshold, self.threshold_rule = _default_threshold(maps)
            else:
                self.threshold, self.threshold_rule = model.threshold, model.config["threshold_rule"]
            self.aligned = model.config["align"]["used"]
        else:
            images = {i.id: to_rgb_uint8(i.input) for i in items}
            self._aligner, self.aligned, self._settings = zero_shot_pose(list(images.values()), self.align, self.defects)
            mutual = MutualScoring(PatchFeatures(seg, self.layers, zoom=self.zoom), aligner=self._aligner).fit(images)
            self._test_feats = mutual.feats
            maps = [mutual.score_named(i.id, to_rgb_uint8(i.input)) for i in items]
            self.threshold, self.threshold_rule = _default_threshold(maps)

    def _source(self, seg):
        from .anomaly import GivenMap, MutualScoring, PatchFeatures

        if self.maps_dir:
            return GivenMap(self.maps_dir)
        if self._model is not None:
            return self._model.source(seg)
        return MutualScoring(PatchFeatures(seg, self.layers, zoom=self.zoom), feats=self._test_feats,
                             aligner=getattr(self, "_aligner", None))

    # ------------------------------------------------------------- items
    def compute(self, seg, item: WorkItem):
        return compute_timed(seg, item, lambda rec: self._compute(seg, item, rec))

    def _compute(self, seg, item: WorkItem, rec: dict):
        from ...images import read_label_map, to_rgb_uint8

        rgb = to_rgb_uint8(item.input)
        truth = None
        if item.meta.get("mask"):
            truth = read_label_map(item.meta["mask"]) > 0
            if truth.shape != rgb.shape[:2]:
                raise ImageError(f"the mask {Path(item.meta['mask']).name} is {truth.shape[1]}x{truth.shape[0]}, "
                                 f"the image {rgb.shape[1]}x{rgb.shape[0]} (W x H)")
        elif item.meta.get("defect") == "good":
            truth = np.zeros(rgb.shape[:2], bool)
        amap = self._source(seg).score_named(item.id, rgb)
        st = getattr(self, "_settings", None) or self.defects
        res = segment_defects(seg, rgb, amap, self.threshold, st)
        rec.update(result_record(res, item), defect=item.meta.get("defect"), threshold_rule=self.threshold_rule,
                   aligned=bool(getattr(self, "aligned", False)), settings=asdict(st))  # what a rerun reports
        return rgb, res, truth

    def write(self, rec: dict, result, item: WorkItem, out: Path) -> dict:
        return write_timed(rec, result, out, lambda: write_item_images(result, item, out, self.threshold, parts=True))

    def finalize(self, out: Path, items: list[WorkItem], done: dict[str, dict]) -> None:
        from .report import category_metrics, write_report

        metrics = category_metrics(out, items, done)
        last = next((done[i.id] for i in items if i.id in done), {})  # a rerun that ran nothing has no prepare()
        ran = hasattr(self, "threshold_rule")
        metrics.update(shots=self.shots,
                       aligned=bool(getattr(self, "aligned", False) if ran else last.get("aligned")),
                       threshold=getattr(self, "threshold", last.get("threshold")),
                       threshold_rule=getattr(self, "threshold_rule", last.get("threshold_rule")),
                       settings=asdict(getattr(self, "_settings", None) or self.defects) if ran or "settings" not in last
                       else last["settings"])
        from ...io import atomic_write_text

        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
        write_report(out, self.category, items, done, metrics)


def write_item_images(result, item: WorkItem, out: Path, threshold: float, parts: bool) -> list[Path]:
    """``ID_map.png``, ``ID_labels.png``, ``ID_overlay.png`` and, with ``parts``, ``parts/ID.npz`` (map, masks,
    truth: what the metrics read)."""
    import io

    from ...io import atomic_write_bytes, write_image

    rgb, res, truth = result
    heat = heatmap(res.anomaly_map, threshold)
    labels = res.labels.astype(np.uint8 if len(res.masks) < 256 else np.uint16)
    files = [write_image(out / f"{item.id}_map.png", heat), write_image(out / f"{item.id}_labels.png", labels),
             write_image(out / f"{item.id}_overlay.png", overlay(rgb, heat, res.masks, truth))]
    if parts:
        buf = io.BytesIO()
        union = res.masks.any(0) if len(res.masks) else np.zeros(rgb.shape[:2], bool)
        np.savez_compressed(buf, map=res.anomaly_map.astype(np.float32), masks=union,
                            truth=truth if truth is not None else np.zeros(0, bool))
        files.append(atomic_write_bytes(out / PARTS / f"{item.id}.npz", buf.getvalue()))
    return files


def result_record(res, item: WorkItem) -> dict:
    """What the manifest and ``results.jsonl`` keep of one image's verdict."""
    rec = {"image": item.name, "score": round(res.score, 5), "verdict": res.verdict,
           "threshold": float(res.threshold), "n_masks": len(res.masks), "instances": res.instances()}
    if res.verdict == "defect" and not len(res.masks):
        rec["why_no_instance"] = "; ".join(d["reason"] for d in res.dropped) or "no region above the threshold"
    return rec


def zero_shot_pose(images: list[np.ndarray], align: str, settings: DefectSettings):
    """(the aligner onto the first image's pose or None, whether used, the instance settings) of a zero-shot set:
    with ``align`` auto, parts are aligned when the set's own images show that the pose varies (see pose.py)."""
    from .model import aligned_settings
    from .pose import PoseAligner, needs_alignment, part_centre

    use = needs_alignment(images)[0] if align == "auto" else align == "on"
    if not use:
        return None, False, settings
    reference = next((im for im in images if part_centre(im) is not None), images[0])
    return PoseAligner.from_reference(reference), True, aligned_settings(settings)


def _default_threshold(maps: list[np.ndarray]) -> tuple[float, str]:
    values = np.concatenate([m.ravel() for m in maps])
    return float(values.mean() + 3 * values.std()), "default: mean + 3 std of the test maps"


def heatmap(anomaly_map: np.ndarray, threshold: float) -> np.ndarray:
    """RGB uint8 colour map of ``anomaly_map``, 0 at blue, the threshold at mid-scale, 2 x threshold red."""
    import cv2

    v = np.clip(anomaly_map / max(2 * threshold, 1e-12), 0, 1)
    return cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]


def overlay(rgb: np.ndarray, heat: np.ndarray, masks: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    """The image with the heat map blended in, the instances outlined in white and the truth in green."""
    import cv2

    out = (0.6 * rgb + 0.4 * heat).astype(np.uint8)
    for m in masks:
        cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, cs, -1, (255, 255, 255), 1)
    if truth is not None and truth.any():
        cs, _ = cv2.findContours(truth.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, cs, -1, (0, 255, 0), 1)
    return out


def category_items(cat: Category) -> list[WorkItem]:
    """One work item per test image, id ``DEFECT_NAME``."""
    return [WorkItem(t.id, str(t.path), None, meta={"defect": t.defect, "mask": str(t.mask) if t.mask else None})
            for t in cat.test]


def category_job(cat: Category, shots: int, **kw) -> DefectJob:
    """The job of a category with its shots (the first K of ``train/good`` by name) and validation images."""
    if kw.get("maps_dir"):
        shots = 0
    if shots > len(cat.train_good):
        raise ImageError(f"--shots {shots} but train/good has {len(cat.train_good)} images")
    return DefectJob(category=cat.name, shots=shots, shot_paths=[str(p) for p in cat.train_good[:shots]],
                     validation_paths=[str(p) for p in cat.train_good[shots:]] if shots else [], **kw)
