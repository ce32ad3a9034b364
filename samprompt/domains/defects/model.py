"""A fitted defect model: fit once on good parts, save, and inspect new images for months.

    model = DefectModel.fit(seg, shots, good=held_out_good, max_false_alarm=0.01, category="disc")
    model.save("models/disc")                         # defect_model.safetensors + defect_model.json
    model = DefectModel.load("models/disc")           # rebuilds the SAM model it was fitted with
    result = model.inspect("line/cam1/0042.png")      # -> DefectResult: map, score, verdict, instances

What is saved (never a pickle): the PatchCore memory bank and, for parts at any
angle, the pose reference (safetensors); the threshold and how it was chosen,
the false-alarm rate it was fitted for and the number of good images behind it,
the feature and instance settings, the image size, the SAM model's name and id,
the learned prompt's id and the encoder's id, and the samprompt version (JSON).
A model is refused on a Segmenter with another SAM model, learned prompt or
encoder: the bank's features would not be comparable.

**Threshold.** The image score is the map's maximum, and an image is a defect
when its score exceeds the threshold. With held-out good images (good images
that are not shots), the threshold is the (k+1)-th highest of their scores, with
k = floor(rate x n) for ``max_false_alarm`` = rate: at most k of those n images
would be flagged. rate 0 gives their maximum (no held-out good image flagged).
n good images can tell rates down to 1/n only: a rate under that gives the
maximum, with a warning. Without held-out images, the threshold is the highest
score of leave-one-out maps of the shots (each scored against the others' bank),
when there are two shots or more; otherwise there is no threshold and ``fit``
says so (the one-shot ``defects`` command then uses its test-set default).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import CheckpointError, ConfigError, ImageError, SampromptError
from .generate import DefectResult, DefectSettings, segment_defects

WEIGHTS = "defect_model.safetensors"
CONFIG = "defect_model.json"
FORMAT = "samprompt-defect-model"


def calibrate(scores: Sequence[float], rate: float) -> tuple[float, str]:
    """The threshold that flags at most ``rate`` of good images with these ``scores`` (see the module doc)."""
    if not 0 <= rate < 1:
        raise ConfigError(f"--max-false-alarm must be in [0, 1), got {rate}")
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    n = len(s)
    k = min(int(math.floor(rate * n + 1e-9)), n - 1)
    if rate > 0 and k == 0:
        warnings.warn(f"{n} held-out good image(s) can calibrate a false-alarm rate of 1/{n} at best, not {rate:g}: "
                      f"the threshold is their highest score (add good images for a finer rate)", stacklevel=3)
    rule = (f"the highest score of {n} held-out good images" if k == 0 else
            f"the {k + 1}th highest score of {n} held-out good images (at most {k} flagged: rate {rate:g})")
    return float(s[k]), rule


def aligned_settings(settings: DefectSettings) -> DefectSettings:
    """The instance settings of parts aligned to a pose: the map's regions, outlined half-way from the threshold to
    each region's peak (see generate.py; chosen on seed 0)."""
    return replace(settings, sam=False, base="threshold", rise=0.5)


def _arrays(images) -> list[np.ndarray]:
    from ...images import to_rgb_uint8

    return [to_rgb_uint8(im) for im in images]


@dataclass
class DefectModel:
    """A PatchCore bank with its threshold, pose reference and settings (see the module doc)."""

    bank: np.ndarray  # (P, C) float32 patch features of the good shots
    threshold: float | None
    config: dict
    pose: dict | None = None  # {"reference": (BINS, RADII) float32, "centre": (x, y), "radius": r}
    seg: object | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, seg, shots: Sequence, good: Sequence = (), *, max_false_alarm: float = 0.0,
            layers: tuple[int, ...] = (2, 4), zoom: int = 2, coreset: float = 0.1, align: str = "auto",
            settings: DefectSettings | None = None, category: str = "", model_name: str | None = None,
            shot_names: Sequence[str] = (), sam_on_parts: bool | None = None) -> "DefectModel":
        """Fit on ``shots`` (good images: paths or arrays); ``good``: held-out good images for the threshold.

        ``align``: ``auto`` (turn parts onto the first shot's pose when the shots and the held-out good
        images need it, see
        :mod:`.pose`), ``on`` or ``off``. ``sam_on_parts``: whether SAM outlines the regions of an
        aligned part (default None: no, the regions are the instances; see :mod:`.generate`).
        """
        from .anomaly import PatchCore, PatchFeatures
        from .pose import PoseAligner, needs_alignment

        if not shots:
            raise ImageError("fitting a defect model needs at least one good image (--shots 0 is the zero-shot "
                             "mode: samprompt defects DATA --shots 0, which needs no model)")
        if align not in ("auto", "on", "off"):
            raise ConfigError(f"align must be auto, on or off, got {align!r}")
        shots, good = _arrays(shots), _arrays(good)
        sizes = {im.shape[:2] for im in shots + good}
        if len(sizes) > 1:
            raise ImageError(f"the good images have different sizes {sorted((w, h) for h, w in sizes)} (W, H); "
                             "a defect model is fitted on images of one size")
        gain = None
        if align == "auto":  # the held-out good images show the pose's spread too (one shot cannot)
            use, gain = needs_alignment(shots + good)
        else:
            use = align == "on"
        aligner = PoseAligner.from_reference(shots[0]) if use else None
        settings = settings or DefectSettings()
        if use and sam_on_parts is None:
            settings = aligned_settings(settings)
        elif sam_on_parts is not None:
            settings = replace(settings, sam=bool(sam_on_parts) or not use)
        feats = PatchFeatures(seg, tuple(layers), zoom=zoom)
        core = PatchCore(feats, coreset, aligner=aligner).fit(shots)
        if good:
            threshold, rule = calibrate([float(core.score(g).max()) for g in good], max_false_alarm)
        elif len(shots) >= 2:
            loo = [float(PatchCore(feats, coreset, aligner=aligner).fit(shots[:i] + shots[i + 1:]).score(s).max())
                   for i, s in enumerate(shots)]
            threshold, rule = max(loo), f"max of leave-one-out maps of the {len(shots)} shots"
        else:
            threshold, rule = None, "none: one shot and no held-out good images"
        from ... import __version__

        h, w = shots[0].shape[:2]
        config = {
            "format": FORMAT, "samprompt_version": __version__, "category": category,
            "model": model_name, "model_id": seg.model_id, "learned_id": seg.learned_id, "encoder": seg.encoder.id,
            "image_size": [w, h], "shots": len(shots), "shot_names": list(shot_names), "good_images": len(good),
            "threshold": threshold, "threshold_rule": rule, "max_false_alarm": max_false_alarm,
            "layers": list(layers), "zoom": zoom, "coreset": coreset, "sigma": core.sigma,
            "align": {"asked": align, "used": use, "gain": None if gain is None else round(gain, 4)},
            "settings": asdict(settings),
        }
        pose = None if aligner is None else {"reference": aligner.reference, "centre": list(aligner.centre),
                                             "radius": aligner.radius}
        return cls(core.bank.astype(np.float32), threshold, config, pose, seg)

    # ------------------------------------------------------------------ files
    def save(self, folder: str | Path) -> Path:
        """Write ``defect_model.safetensors`` and ``defect_model.json`` into ``folder``; returns the folder."""
        from safetensors.numpy import save

        from ...io import atomic_write_bytes, atomic_write_text

        if self.threshold is None:
            raise ConfigError("this model has no threshold (one shot and no held-out good images): give more good "
                              "images than --shots, or at least two shots")
        folder = Path(folder)
        tensors = {"bank": np.ascontiguousarray(self.bank, np.float32)}
        if self.pose is not None:
            tensors["pose_reference"] = np.ascontiguousarray(self.pose["reference"], np.float32)
        config = {**self.config, "threshold": self.threshold,
                  "pose": None if self.pose is None else {"centre": self.pose["centre"], "radius": self.pose["radius"]}}
        atomic_write_bytes(folder / WEIGHTS, save(tensors, metadata={"format": FORMAT}))
        atomic_write_text(folder / CONFIG, json.dumps(config, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, seg=None, attach: bool = True) -> "DefectModel":
        """Read a saved model; ``seg``: the Segmenter to inspect with (default: rebuilt from the model's name and
        learned prompt). A Segmenter with another SAM model, learned prompt or encoder is refused.
        ``attach=False`` reads and checks the files only."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not folder.is_dir():
            raise SampromptError(f"no defect model at {folder} (a folder made by samprompt defects fit)")
        cfg_path, w_path = folder / CONFIG, folder / WEIGHTS
        if not cfg_path.is_file() or not w_path.is_file():
            raise SampromptError(f"{folder} is not a defect model: it needs {CONFIG} and {WEIGHTS} "
                                 "(made by samprompt defects fit)")
        try:
            config = json.loads(cfg_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{cfg_path} is corrupt: {exc}") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise CheckpointError(f"{cfg_path} is not a samprompt defect model (format {FORMAT!r})")
        try:
            tensors = load_file(str(w_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{w_path} is corrupt: {exc}") from None
        if "bank" not in tensors:
            raise CheckpointError(f"{w_path} holds no feature bank")
        pose = None
        if config.get("pose"):
            if "pose_reference" not in tensors:
                raise CheckpointError(f"{w_path} lacks the pose reference that {CONFIG} announces")
            pose = {**config["pose"], "reference": tensors["pose_reference"]}
        if not isinstance(config.get("threshold"), (int, float)):
            raise CheckpointError(f"{cfg_path} has no threshold")
        model = cls(tensors["bank"], float(config["threshold"]), config, pose)
        return model.attach(seg) if attach else model

    def attach(self, seg=None) -> "DefectModel":
        """Use ``seg`` (default: build the model's own SAM model) after checking it matches the fitted one."""
        if seg is None:
            from ...jobs import SegmenterSpec

            name = self.config.get("model")
            if not name:
                raise ConfigError("this defect model does not name its SAM model; pass a Segmenter")
            seg = SegmenterSpec(name, self.config.get("learned")).build()
        self.check(seg.model_id, seg.learned_id, seg.encoder.id)
        self.seg = seg
        return self

    def check(self, model_id: str, learned_id: str | None, encoder: str) -> None:
        """Refuse a SAM model, learned prompt or encoder other than the fitted one's."""
        c = self.config
        for what, have, want in (("SAM model", model_id, c.get("model_id")), ("learned prompt", learned_id,
                                 c.get("learned_id")), ("encoder", encoder, c.get("encoder"))):
            if have != want:
                raise CheckpointError(f"this defect model was fitted with the {what} {want}, not {have}: its features "
                                      f"are not comparable; use --model {c.get('model') or want} (and the same "
                                      "encoder options), or fit again")

    # ------------------------------------------------------------------ use
    @property
    def settings(self) -> DefectSettings:
        saved = self.config.get("settings", {})
        unknown = sorted(set(saved) - {f.name for f in fields(DefectSettings)})
        if unknown:
            raise CheckpointError(f"this defect model was fitted by samprompt {self.config.get('samprompt_version')}, "
                                  f"whose instance settings {unknown} this version does not have: fit it again")
        return DefectSettings(**saved)

    def source(self, seg=None):
        """The :class:`~.anomaly.PatchCore` map source of this model on ``seg`` (default: its own)."""
        from .anomaly import PatchCore, PatchFeatures
        from .pose import PoseAligner

        seg = seg or self.seg
        if seg is None:
            raise ConfigError("attach a Segmenter first (DefectModel.load(folder) or model.attach(seg))")
        c = self.config
        aligner = None if self.pose is None else PoseAligner(self.pose["reference"], tuple(self.pose["centre"]),
                                                             float(self.pose["radius"]))
        return PatchCore(PatchFeatures(seg, tuple(c["layers"]), zoom=c["zoom"]), c["coreset"], sigma=c["sigma"],
                         bank=self.bank, aligner=aligner)

    def check_size(self, rgb: np.ndarray, name: str = "the image") -> None:
        w, h = self.config["image_size"]
        if rgb.shape[:2] != (h, w):
            raise ImageError(f"{name} is {rgb.shape[1]}x{rgb.shape[0]}, the model was fitted on {w}x{h} images "
                             "(W x H); fit a model on images of this size")

    def inspect(self, image, seg=None, threshold: float | None = None) -> DefectResult:
        """Judge one image (a path or an array): anomaly map, score, verdict and instances."""
        from ...images import to_rgb_uint8

        seg = seg or self.seg
        rgb = to_rgb_uint8(image)
        self.check_size(rgb, str(image) if isinstance(image, (str, Path)) else "the image")
        t = self.threshold if threshold is None else threshold
        if t is None:
            raise ConfigError("this model has no threshold; pass one")
        amap = self.source(seg).score(rgb)
        return segment_defects(seg, rgb, amap, t, self.settings)
