"""A raster on the jobs engine: each work item is a window (a group of prompted objects, or a tile).

An item reads only its window, segments it and writes its instances to
``OUT/parts/ITEM.json`` (COCO RLE on the window, with the window's offset);
when every item is finished, :meth:`GeoJob.finalize` assembles the raster's
outputs from the parts (:mod:`.assemble`). A rerun skips finished items, so a
killed job resumes where it stopped.

Prompt checks happen when the job is planned: an object whose prompt lies off
the raster or in nodata gets an item of its own, which fails with the reason,
so the other objects go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import PromptError
from ...jobs.items import WorkItem
from ...jobs.worker import JobSettings, compute_timed, write_timed
from ...jobs.writers import PARTS
from .prompts import GeoObject
from .raster import RasterInfo, open_raster, read_window
from .tiles import Window, group_objects, inside, tile_grid

AUTO_DEFAULTS = {"points_per_side": 12, "pred_iou_thresh": 0.6, "stability_score_thresh": 0.8}  # see docs/geo.md


@dataclass
class GeoResult:
    window: Window
    instances: list[dict]


@dataclass
class GeoJob(JobSettings):
    """One raster, prompted (``mode="prompts"``) or automatic (``mode="auto"``); see the module doc.

    ``tile``/``overlap``: the automatic grid, and the smallest window of a
    prompted object; ``min_area``: instances smaller than this (pixels) are
    dropped; ``simplify``: polygon tolerance in pixels; ``formats``: ``geojson``
    and optionally ``gpkg``; ``join``: how much two tiles' pieces must agree in
    their shared strip to be joined (see :mod:`.assemble`).
    """

    unit = "window"

    info: RasterInfo | None = None
    mode: str = "prompts"
    tile: int = 256
    overlap: int = 64
    simplify: float = 1.0
    join: float = 0.5
    formats: list[str] = field(default_factory=lambda: ["geojson"])
    auto: dict = field(default_factory=lambda: dict(AUTO_DEFAULTS))
    min_area: int = 16
    # The coarse pass keeps masks SAM finds less stable: a decimated field's edges are soft, so its mask moves
    # with the logit cut (a 1-tile field on a 1792-px raster: 0.74 stable, and missed at 0.8); its masks are
    # still held to a least area, to the better masks' pixels and to the background test.
    coarse_stability: float = 0.6
    # ... of 0.3 tiles' area and up: a field of half a tile across a seam was left to the tiles, which covered
    # 0.40 of it (the README's 2048-px scene); the coarse mask joins their pieces (0.91)
    coarse_min_tiles: float = 0.3

    def prompts_json(self, item: WorkItem):
        objs = None if item.prompts is None else [o.to_json() for o in item.prompts]
        return {"window": item.meta.get("window"), "objects": objs}

    def planned_outputs(self, item: WorkItem, out: Path) -> list[Path]:
        return [out / PARTS / f"{item.id}.json"]

    def job_outputs(self, out: Path) -> list[Path]:
        if self.info is None:
            return []
        return [out / f"{self.info.name}{ext}" for ext in (".labels.tif", ".geojson", *(
            [".gpkg"] if "gpkg" in self.formats else []))]

    def compute(self, seg, item: WorkItem):
        return compute_timed(seg, item, lambda rec: self._compute(seg, item, rec))

    def _compute(self, seg, item: WorkItem, rec: dict):
        from rasterio.windows import Window as RioWindow

        win = tuple(item.meta["window"])
        if item.meta.get("coarse"):
            instances = self._coarse(seg)
            rec["n_masks"] = len(instances)
            rec["scores"] = [i["score"] for i in instances]
            return GeoResult(win, instances)  # type: ignore[arg-type]
        with open_raster(self.info.path) as src:
            if item.prompts is not None:
                for obj in item.prompts:
                    problem = prompt_problem(src, self.info, obj)
                    if problem:
                        raise PromptError(problem)
            rgb, valid = read_window(src, self.info, RioWindow(*win))
        if item.prompts is None:
            instances = self._auto(seg, rgb, valid)
        else:
            instances = self._prompted(seg, rgb, valid, win, item.prompts)
        rec["n_masks"] = len(instances)
        rec["scores"] = [i["score"] for i in instances]
        return GeoResult(win, instances)  # type: ignore[arg-type]

    def _prompted(self, seg, rgb, valid, win: Window, objects: list[GeoObject]) -> list[dict]:
        from ...prompts import Prompt

        x, y, w, h = win
        prompts = []
        for o in objects:
            box = None
            if o.box is not None:
                b = np.array(o.box) - [x, y, x, y]
                box = np.clip(b, 0, [w, h, w, h])
            pts = np.array(o.points, np.float64).reshape(-1, 2) - [x, y]
            prompts.append(Prompt(points=pts, labels=np.array(o.point_labels, np.int64), box=box, label=o.name))
        results = seg.predict(rgb, prompts)
        return [_instance(r.mask & valid, float(r.score), o) for r, o in zip(results, objects)]

    def _coarse(self, seg) -> list[dict]:
        """Objects larger than a tile, whole: segment-everything on the raster decimated to about a tile, and
        before it on the raster decimated to half a tile and padded to a tile (so an object spanning most of
        the raster is a mid-sized object there), each mask of at least half a tile's area brought back to
        full resolution over its own box (an ``origin`` per instance). The assembly merges the fine tiles'
        pieces of it into it."""
        import cv2

        from .raster import read_decimated

        with open_raster(self.info.path) as src:
            rgb, valid, f = read_decimated(src, self.info, self.tile)
            small_rgb, small_valid, _ = read_decimated(src, self.info, self.tile // 2)
        if f <= 1.5 or not valid.any():  # the raster is about a tile: the tiles see every object whole
            return []
        coarse = {**self.auto, "stability_score_thresh": min(self.coarse_stability,
                                                             self.auto.get("stability_score_thresh", 1.0))}
        candidates = [(m, s) for m, s in self._padded_everything(seg, small_rgb, small_valid, valid.shape, coarse)]
        res = seg.segment_everything(rgb, **coarse)
        candidates += list(zip(res.masks, res.scores))  # each level best first, the larger objects' level first
        smallest = self.coarse_min_tiles * self.tile ** 2 / f ** 2
        out, taken = [], np.zeros(valid.shape, bool)
        H, W = self.info.height, self.info.width
        vy, vx = np.nonzero(valid)
        span = np.array([vx.max() - vx.min() + 1, vy.max() - vy.min() + 1])
        for m, s in candidates:
            m = m & valid
            area = int(m.sum())
            if area < smallest or (m & taken).sum() > area / 2:
                continue  # small (the tiles find it), or a repeat of a better mask
            ys, xs = np.nonzero(m)
            if area > 0.5 * valid.sum() and (np.array([np.ptp(xs) + 1, np.ptp(ys) + 1]) >= 0.9 * span).all():
                continue  # the background: over half the raster, from edge to edge (a large field is not both)
            taken |= m
            x0, y0 = max(int(xs.min()) - 1, 0), max(int(ys.min()) - 1, 0)
            x1, y1 = min(int(xs.max()) + 2, m.shape[1]), min(int(ys.max()) + 2, m.shape[0])
            fx0, fy0 = int(np.floor(x0 * f)), int(np.floor(y0 * f))
            fx1, fy1 = min(int(np.ceil(x1 * f)), W), min(int(np.ceil(y1 * f)), H)
            crop = m[y0:y1, x0:x1].astype(np.float32)  # smooth edges: linear, cut at one half
            full = cv2.resize(crop, (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_LINEAR) >= 0.5
            if full.any():
                inst = _instance(full, float(s), None)
                inst["origin"] = [fx0, fy0]
                out.append(inst)
        return out

    def _padded_everything(self, seg, rgb, valid, shape, settings):
        """Segment-everything on ``rgb`` centred in a tile-sized black frame; masks cropped back and resized to
        ``shape`` (the tile-level decimated raster's)."""
        import cv2

        h, w = valid.shape
        oy, ox = (self.tile - h) // 2, (self.tile - w) // 2
        frame = np.zeros((self.tile, self.tile, 3), np.uint8)
        frame[oy:oy + h, ox:ox + w] = rgb * valid[..., None]
        res = seg.segment_everything(frame, **settings)
        for m, s in zip(res.masks, res.scores):
            m = m[oy:oy + h, ox:ox + w] & valid
            if m.any():
                yield cv2.resize(m.astype(np.float32), shape[::-1], interpolation=cv2.INTER_LINEAR) >= 0.5, s

    def _auto(self, seg, rgb, valid) -> list[dict]:
        if not valid.any():
            return []
        res = seg.segment_everything(rgb, **self.auto)
        pts = np.asarray(res.extra.get("points", np.zeros((len(res.masks), 2))))
        taken = np.zeros(valid.shape, bool)
        out = []
        for m, s, p in zip(res.masks, res.scores, pts):  # best first
            px, py = min(int(p[0]), valid.shape[1] - 1), min(int(p[1]), valid.shape[0] - 1)
            if not valid[py, px]:
                continue  # a proposal that starts in nodata
            m = m & valid
            area = int(m.sum())
            if area < max(self.min_area, 1) or (m & taken).sum() > area / 2:
                continue  # too small, or mostly a better proposal's pixels (a duplicate or a part of it)
            m &= ~taken
            taken |= m
            if m.sum() >= max(self.min_area, 1):
                out.append(_instance(m, float(s), None))
        return out

    def write(self, rec: dict, result, item: WorkItem, out: Path) -> dict:
        from ...io import atomic_write_text

        def parts() -> list[Path]:
            doc = {"window": list(result.window), "tile": item.meta.get("tile"), "instances": result.instances}
            return [atomic_write_text(out / PARTS / f"{item.id}.json", json.dumps(doc, separators=(",", ":")))]

        return write_timed(rec, result, out, parts)

    def finalize(self, out: Path, items: list[WorkItem], done: dict[str, dict]) -> None:
        """Assemble the raster's outputs once every item is finished (done or failed) with these settings."""
        from ...jobs.manifest import Manifest
        from .assemble import assemble

        last = Manifest(out).last
        finished = all(last.get(i.id, {}).get("status") in ("done", "failed")
                       and last[i.id].get("config") == self.config_id(i) for i in items)
        if finished and done:  # nothing done (an unreadable raster): no empty outputs that look like a result
            assemble(out, self, [i for i in items if i.id in done])


def _instance(mask: np.ndarray, score: float, obj: GeoObject | None) -> dict:
    from ...masks import mask_to_rle

    ys, xs = np.nonzero(mask)
    bbox = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else [0, 0, 0, 0]
    return {"number": obj.number if obj else None, "label": obj.label if obj else None,
            "name": obj.name if obj else None, "score": round(score, 4), "bbox": bbox, "rle": mask_to_rle(mask)}


def prompt_problem(src, info: RasterInfo, obj: GeoObject) -> str | None:
    """Why an object's prompt cannot be used (off the raster, or in nodata), or None."""
    from rasterio.windows import Window

    what = f"feature {obj.number}"
    if not inside(obj, info.width, info.height):
        return f"{what}: its prompt lies outside the raster (0..{info.width} x 0..{info.height} px)"
    uniq = sorted(set(info.bands))
    if obj.box is None:
        for (x, y), lab in zip(obj.points, obj.point_labels):
            col, row = min(int(x), info.width - 1), min(int(y), info.height - 1)
            if lab == 1 and not np.all(src.read_masks(uniq, window=Window(col, row, 1, 1)) > 0):
                return f"{what}: its point ({x:.1f}, {y:.1f}) px lies in nodata"
        return None
    x0, y0, x1, y1 = (max(0, int(obj.box[0])), max(0, int(obj.box[1])),
                      min(info.width, int(np.ceil(obj.box[2]))), min(info.height, int(np.ceil(obj.box[3]))))
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    shape = (len(uniq), min(h, 64), min(w, 64))
    if not np.all(src.read_masks(uniq, window=Window(x0, y0, w, h), out_shape=shape) > 0, axis=0).any():
        return f"{what}: its box lies entirely in nodata"
    return None


def geo_items(info: RasterInfo, objects: list[GeoObject] | None, tile: int, overlap: int,
              coarse: bool = False) -> list[WorkItem]:
    """The work items of a raster: its tiles (``objects`` None: automatic mode) or its objects' windows."""
    if objects is None:  # the tiles, after a coarse pass for objects larger than a tile if asked
        first = [WorkItem("coarse", info.path, None, meta={"window": [0, 0, info.width, info.height],
                                                           "coarse": True})] if coarse else []
        return first + [WorkItem(f"tile_r{r:04d}_c{c:04d}", info.path, None,
                                    meta={"window": list(w), "tile": [r, c]})
                           for r, c, w in tile_grid(info.width, info.height, tile, overlap)]
    items = []
    with open_raster(info.path) as src:
        bad = {o.number for o in objects if prompt_problem(src, info, o)}
    good = group_objects([o for o in objects if o.number not in bad], info.width, info.height, tile)
    alone = [((0, 0, 0, 0), [o]) for o in objects if o.number in bad]
    for win, objs in sorted(good + alone, key=lambda g: min(o.number for o in g[1])):
        first = min(o.number for o in objs)
        items.append(WorkItem(f"objects_{first:05d}", info.path, objs, meta={"window": list(win)}))
    return items
