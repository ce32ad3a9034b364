"""3D segmentation from a few prompts: each object starts on a key slice and is propagated slice by slice.

The volume is cut into 2D slices along an axis of its RAS grid (axial = axis
2). Slice k's image has the two other axes as columns and rows (``take(data,
k, axis).T``), scaled to square pixels when the voxels are not. Each object's
prompt (:class:`~.prompts.VolumeObject`) becomes a :class:`Track`:

* ``box`` + ``slice``: the box on its key slice;
* ``box3d``: the xy box on the middle slice of its z range, the range as a limit;
* ``points``: the positive and negative points of the slice with the most positive ones;
  points on other slices join the prompt when propagation reaches them;
* ``mask``: the box of the coarse mask on its largest slice, and on every slice the
  coarse mask's box, inside the slices it covers.

From the key slice the object is followed up and then down. The object's
intensity band is taken on its key slice (median +- 3 robust standard
deviations of its mask). The next slice is prompted with the box around the
previous mask's *core* (its in-band pixels, largest piece; with ``core_box``,
else the whole mask), grown by ``margin`` of its half side, and, with
``use_logits``, the previous low-res logits as a mask prompt; with ``clip`` the
mask is kept inside its prompt box. The core matters: a loose box makes SAM
fill it, and a box drawn around that fill never tightens as the organ narrows.
An object stops when its mask vanishes (fewer than ``min_area`` pixels), its
predicted IoU drops under ``stop_iou``, or fewer than ``min_agree`` of its
voxels lie in its band: when an organ ends, SAM still finds *something* in the
box, but it is other tissue. The defaults were chosen on generated CT volumes
of seeds 100-105 and measured on others (docs/medical.md). Every object due on a slice is decoded in one batch on that slice's
one embedding. With ``fuse``, two more passes along the other two axes (each
from the first pass's 3D box) vote with the first, voxel by voxel (2 of 3).

That is ``method="box"``. With ``method="memory"`` (a SAM 2 model), SAM 2's video
predictor follows every object from its key-slice prompt with its memory of the
masks it made (:mod:`samprompt.domains.memory`), within the object's slice range;
the box settings above do not apply. ``method="auto"`` picks memory for SAM 2
models and box for the others.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from ...errors import PromptError
from ...normalize import Normalizer
from ...prompts import Prompt
from ..propagation import PropagationSettings, Track, box_mask, mask_box, follow, propagate
from .prompts import VolumeObject
from .volume import MedicalVolume


@dataclass
class VolumeSegmentation:
    """Result of :func:`segment_volume`: ``labels`` (X, Y, Z) on the RAS grid; per object ``objects``
    (label, name, slices from/to, voxels, millilitres, mean predicted IoU); counts and timing."""

    labels: np.ndarray
    objects: list[dict]
    encoder_passes: int = 0
    decoded_slices: int = 0
    seconds: float = 0.0
    masks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)


class SliceView:
    """Slices of a volume along one axis as uint8 RGB images with square pixels, and the way back."""

    def __init__(self, volume_u8: np.ndarray, spacing, axis: int, raw: np.ndarray | None = None) -> None:
        self.vol, self.axis = volume_u8, axis
        self.raw = raw if raw is not None else volume_u8
        self.u, self.v = [a for a in range(3) if a != axis]
        su, sv = spacing[self.u], spacing[self.v]
        self.scale = (su / min(su, sv), sv / min(su, sv))  # pixels per voxel along u (columns) and v (rows)
        self.native = (volume_u8.shape[self.v], volume_u8.shape[self.u])  # (rows, cols)
        self.size = (round(self.native[0] * self.scale[1]), round(self.native[1] * self.scale[0]))
        self.n = volume_u8.shape[axis]

    @property
    def scaled(self) -> bool:
        return self.size != self.native

    def image(self, k: int) -> np.ndarray:
        sl = np.take(self.vol, k, axis=self.axis).T
        if self.scaled:
            sl = cv2.resize(sl, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
        return np.repeat(sl[..., None], 3, axis=2)

    def values(self, k: int) -> np.ndarray:
        """Slice k's raw intensities as (rows, cols) = (v, u) voxels."""
        return np.take(self.raw, k, axis=self.axis).T

    def to_pixels(self, uv) -> np.ndarray:
        """Continuous in-plane voxel coordinates (u, v) (voxel edges at integers) -> image pixels."""
        return np.asarray(uv, np.float64) * np.asarray(self.scale)

    def to_native(self, mask: np.ndarray) -> np.ndarray:
        """A mask of the (scaled) image -> (rows, cols) = (v, u) voxels of the slice."""
        if not self.scaled:
            return mask
        small = cv2.resize(mask.astype(np.float32), (self.native[1], self.native[0]), interpolation=cv2.INTER_AREA)
        return small >= 0.5

    def to_scaled(self, mask: np.ndarray) -> np.ndarray:
        if not self.scaled:
            return mask
        return cv2.resize(mask.astype(np.uint8), (self.size[1], self.size[0]), interpolation=cv2.INTER_NEAREST) > 0

    def put(self, volume: np.ndarray, k: int, mask_native: np.ndarray) -> None:
        idx = [slice(None)] * 3
        idx[self.axis] = k
        volume[tuple(idx)] = mask_native.T


def _in_volume(p: np.ndarray, shape, where: str) -> None:
    """Continuous RAS voxel indices (centres at integers) must fall on a voxel of the volume."""
    r = np.round(p)
    if np.any(r < 0) or np.any(r >= np.asarray(shape)):
        dims = " x ".join(map(str, shape))
        raise PromptError(f"{where} lies outside the volume ({dims} voxels)")


def _tracks(vol: MedicalVolume, objects: list[VolumeObject], axis: int, view: SliceView) -> list[Track]:
    """Each object's key slice, key prompt and limits, in the view's pixels."""
    out = []
    shape = vol.shape
    u, v = view.u, view.v

    def ras(p, space):
        return vol.world_to_ras(p) if space == "world" else vol.file_to_ras(p)

    def px_box(lo3, hi3):  # inclusive RAS voxel ranges -> pixel box of the slice image
        b = np.array([lo3[u], lo3[v], hi3[u] + 1, hi3[v] + 1], np.float64)
        return np.concatenate([view.to_pixels(b[:2]), view.to_pixels(b[2:])])

    for obj in objects:
        where = f"object label {obj.label}" + (f" ({obj.name})" if obj.name else "")
        if obj.kind == "box":
            fa = obj.axis
            if not 0 <= obj.slice < vol.file_shape[fa]:
                raise PromptError(f"{where}: slice {obj.slice} is out of range; axis {fa} has "
                                  f"{vol.file_shape[fa]} slices (0 to {vol.file_shape[fa] - 1})")
            x0, y0, x1, y1 = obj.box
            ins = [a for a in range(3) if a != fa]
            c0, c1 = np.zeros(3), np.zeros(3)
            c0[ins], c1[ins], c0[fa], c1[fa] = (x0, y0), (x1, y1), obj.slice, obj.slice
            for c, name in ((c0, "box corner (x0, y0)"), (c1, "box corner (x1, y1)")):
                _in_volume(c, vol.file_shape, f"{where}: {name} {c[ins].tolist()}")
            r0, r1 = ras(c0, "voxel"), ras(c1, "voxel")
            lo3, hi3 = np.round(np.minimum(r0, r1)).astype(int), np.round(np.maximum(r0, r1)).astype(int)
            key = int(lo3[axis])
            out.append(Track(obj.label, obj.name, key, Prompt(box=px_box(lo3, hi3)), 0, shape[axis] - 1))
        elif obj.kind == "box3d":
            b = obj.box3d
            corners = np.array(list(itertools.product(*[(b[i], b[i + 3]) for i in range(3)])))  # all 8
            r = ras(corners, obj.space)
            lo_f, hi_f = r.min(0), r.max(0)
            past = np.maximum(np.maximum(-0.5 - lo_f, hi_f - (np.asarray(shape) - 0.5)), 0)  # beyond the outer faces
            if np.any(past > 1.0) and not np.any(hi_f < -0.5) and not np.any(lo_f > np.asarray(shape) - 0.5):
                # one rule with segment's boxes: a box must lie in the volume (a voxel's slack for rounding)
                worst = int(np.argmax(past))
                raise PromptError(f"{where}: box3d {list(obj.box3d)} ({obj.space}) runs {past[worst]:.1f} voxels past "
                                  f"the volume ({' x '.join(map(str, shape))} voxels, RAS axis {'xyz'[worst]}); "
                                  "give a box inside it")
            lo3 = np.maximum(np.ceil(lo_f - 1e-6), 0).astype(int)
            hi3 = np.minimum(np.floor(hi_f + 1e-6), np.asarray(shape) - 1).astype(int)
            if np.any(hi3 < lo3):
                raise PromptError(f"{where}: box3d {list(obj.box3d)} ({obj.space}) lies outside the volume "
                                  f"({' x '.join(map(str, shape))} voxels)")
            box = px_box(lo3, hi3)
            key = int((lo3[axis] + hi3[axis]) // 2)
            limits = {k: box for k in range(lo3[axis], hi3[axis] + 1)}
            out.append(Track(obj.label, obj.name, key, Prompt(box=box), int(lo3[axis]), int(hi3[axis]), limits))
        elif obj.kind == "points":
            pts = np.asarray(obj.points, np.float64)
            r = ras(pts, obj.space)
            for i, p in enumerate(r):
                _in_volume(p, shape, f"{where}: point {list(obj.points[i])} ({obj.space})")
            ks = np.round(r[:, axis]).astype(int)
            labs = np.asarray(obj.labels, np.int64)
            guides = {}
            for k in sorted(set(ks.tolist())):
                sel = ks == k
                guides[k] = (view.to_pixels(r[sel][:, [u, v]] + 0.5), labs[sel])
            pos = [k for k in guides if guides[k][1].max() == 1]
            key = max(pos, key=lambda k: (int(guides[k][1].sum()), -abs(k - float(np.median(pos)))))
            pts_k, labs_k = guides[key]
            out.append(Track(obj.label, obj.name, key, Prompt(points=pts_k, labels=labs_k), 0, shape[axis] - 1,
                             guides=guides))
        else:
            coarse = vol.from_file_order(_read_mask(obj.mask, vol)) > 0
            if not coarse.any():
                raise PromptError(f"{where}: mask {obj.mask} is empty")
            limits = {}
            areas = {}
            for k in range(shape[axis]):
                sl = np.take(coarse, k, axis=axis)
                if sl.any():
                    ii, jj = np.nonzero(sl)  # ii along u, jj along v
                    lo3, hi3 = np.zeros(3, int), np.zeros(3, int)
                    lo3[u], lo3[v], hi3[u], hi3[v] = ii.min(), jj.min(), ii.max(), jj.max()
                    limits[k] = px_box(lo3, hi3)
                    areas[k] = int(sl.sum())
            key = max(areas, key=areas.get)
            out.append(Track(obj.label, obj.name, key, Prompt(box=limits[key]), min(limits), max(limits), limits))
    return out


def _read_mask(path: str | None, vol: MedicalVolume) -> np.ndarray:
    from ...errors import require

    nib = require("nibabel", "medical")
    try:
        arr = np.asarray(nib.load(str(path)).dataobj)
    except FileNotFoundError:
        raise PromptError(f"mask file {path} does not exist") from None
    except Exception as exc:
        raise PromptError(f"cannot read mask file {path}: {exc}") from None
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if tuple(arr.shape) != vol.file_shape:
        raise PromptError(f"mask file {path} has shape {tuple(arr.shape)}; the volume {vol.name} has "
                          f"{vol.file_shape}: a coarse mask must be on the volume's grid")
    return arr


def propagate_object(seg, view: SliceView, key: int, prompt: Prompt,
                     settings: PropagationSettings | None = None) -> dict[int, np.ndarray]:
    """Follow one object from ``prompt`` (in the view's pixels) on slice ``key`` up and down the volume,
    as :func:`segment_volume` does; its mask per slice reached, as (rows, cols) voxels of the slice."""
    return follow(seg, view, key, prompt, settings)


def _volume_of(track: Track, view: SliceView, shape) -> np.ndarray:
    m = np.zeros(shape, bool)
    for k, mask in track.masks.items():
        view.put(m, k, mask)
    return m


def segment_volume(
    seg,
    vol: MedicalVolume,
    objects: list[VolumeObject],
    window: Normalizer,
    settings: PropagationSettings | None = None,
) -> VolumeSegmentation:
    """Segment each object of ``vol`` (see the module doc); labels on the RAS grid."""
    settings = settings or PropagationSettings()
    t0 = time.perf_counter()
    if not objects:
        raise PromptError(f"no objects to segment in {vol.name}")
    u8 = window(vol.data)
    stats = {"encoder_passes": 0, "decoded_slices": 0}
    masks: dict[int, np.ndarray] = {}
    names: dict[int, str | None] = {}
    scores: dict[int, list[float]] = {}
    by_axis: dict[int, list[VolumeObject]] = {}
    for o in objects:
        by_axis.setdefault(vol.ras_axis_of(o.axis) if o.kind == "box" else 2, []).append(o)
    for axis, objs in by_axis.items():
        view = SliceView(u8, vol.spacing, axis, vol.data)
        tracks = _tracks(vol, objs, axis, view)
        keys = [t.key for t in tracks]
        propagate(seg, view, tracks, settings, stats, range(min(keys), max(keys) + 1))
        for t in tracks:
            masks[t.label] = _volume_of(t, view, vol.shape)
            names[t.label] = t.name
            scores[t.label] = list(t.scores.values())
    if settings.fuse:
        axis_of = {o.label: axis for axis, objs in by_axis.items() for o in objs}
        _fuse(seg, vol, u8, masks, axis_of, settings, stats)
    labels = np.zeros(vol.shape, np.uint16 if max(masks) > 255 else np.uint8)
    voxel_ml = float(np.prod(vol.spacing)) / 1000.0
    for lab in sorted(masks, key=lambda k: -int(masks[k].sum())):  # large first: small objects stay on top
        labels[masks[lab]] = lab
    info = []
    for o in objects:
        m = masks[o.label]
        zs = np.nonzero(m.any(axis=(0, 1)))[0]
        info.append({"label": o.label, "name": o.name, "kind": o.kind, "voxels": int(m.sum()),
                     "ml": round(int(m.sum()) * voxel_ml, 3),
                     "slices": [int(zs.min()), int(zs.max())] if len(zs) else None,
                     "score": round(float(np.mean(scores[o.label])), 4) if scores[o.label] else None})
    return VolumeSegmentation(labels, info, stats["encoder_passes"], stats["decoded_slices"],
                              time.perf_counter() - t0, masks)


def _fuse(seg, vol: MedicalVolume, u8: np.ndarray, masks: dict[int, np.ndarray], axis_of: dict[int, int],
          settings, stats) -> None:
    """Two more passes along the other axes from each object's 3D box; a voxel stays where 2 of 3 agree."""
    votes = {lab: m.astype(np.uint8) for lab, m in masks.items()}
    for axis in range(3):
        view = SliceView(u8, vol.spacing, axis, vol.data)
        tracks = []
        for lab, m in masks.items():
            if not m.any() or axis_of[lab] == axis:
                continue
            idx = np.nonzero(m)
            lo3 = np.array([i.min() for i in idx])
            hi3 = np.array([i.max() for i in idx])
            b = np.array([lo3[view.u], lo3[view.v], hi3[view.u] + 1, hi3[view.v] + 1], np.float64)
            box = np.concatenate([view.to_pixels(b[:2]), view.to_pixels(b[2:])])
            best = int(np.argmax(m.sum(axis=tuple(a for a in range(3) if a != axis))))
            tracks.append(Track(lab, None, best, Prompt(box=mask_box(view.to_scaled(np.take(m, best, axis).T))),
                                int(lo3[axis]), int(hi3[axis]), {k: box for k in range(lo3[axis], hi3[axis] + 1)}))
        propagate(seg, view, tracks, settings, stats)
        for t in tracks:
            votes[t.label] += _volume_of(t, view, vol.shape)
    for lab in masks:
        masks[lab] = votes[lab] >= 2




def oracle_segmentation(seg, vol: MedicalVolume, truth: dict[int, np.ndarray], window: Normalizer,
                        settings: PropagationSettings | None = None, axis: int = 2) -> dict[int, np.ndarray]:
    """The ceiling for propagation: every slice of every object prompted with its true box (masks on the RAS grid).

    One encoder pass per slice that holds an object, all objects of the slice in one decode; masks clipped to
    their box as in propagation (``settings.clip``).
    """
    settings = settings or PropagationSettings()
    view = SliceView(window(vol.data), vol.spacing, axis, vol.data)
    out = {lab: np.zeros(vol.shape, bool) for lab in truth}
    for k in range(view.n):
        batch = []
        for lab, m in truth.items():
            sl = np.take(m, k, axis=axis).T
            box = mask_box(sl)
            if box is not None:
                batch.append((lab, Prompt(box=np.concatenate([view.to_pixels(box[:2]), view.to_pixels(box[2:])]))))
        if not batch:
            continue
        results = seg.decode(seg.embed(view.image(k)), [p for _, p in batch], multimask="auto")
        for (lab, p), r in zip(batch, results):
            mask = r.mask & box_mask(p.box, r.mask.shape) if settings.clip else r.mask
            view.put(out[lab], k, view.to_native(mask))
    return out


__all__ = ["PropagationSettings", "SliceView", "Track", "VolumeSegmentation", "oracle_segmentation", "propagate_object",
           "segment_volume"]
