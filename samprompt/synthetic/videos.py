"""Generated videos with known truth: coloured shapes drifting over a textured floor.

:func:`make_video` gives the frames and, per object, its mask on every frame; objects move
at a constant velocity, bounce off the edges, and keep their shape and colour, so a
tracker's masks can be scored frame by frame. :func:`write_video` writes the frames as a
video file (Motion-JPEG in an ``.avi``, which every OpenCV build writes and reads) or as a
folder of PNG frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class Video:
    frames: list[np.ndarray]  # (H, W, 3) uint8 RGB each
    truth: list[list[np.ndarray]]  # truth[object][frame]: (H, W) bool


def make_video(seed: int = 0, n_frames: int = 12, size: tuple[int, int] = (192, 256), n_objects: int = 3,
               speed: float = 5.0) -> Video:
    """A video of ``n_frames`` frames of ``size`` (rows, cols) with ``n_objects`` moving shapes."""
    rng = np.random.default_rng(seed)
    h, w = size
    floor = cv2.GaussianBlur(rng.integers(30, 90, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)
    objs = []
    for _ in range(n_objects):
        r = float(rng.uniform(0.08, 0.14) * min(h, w))
        objs.append({
            "kind": str(rng.choice(["disc", "box", "ellipse"])), "r": r, "aspect": float(rng.uniform(0.6, 1.0)),
            "pos": rng.uniform([r, r], [w - r, h - r]), "vel": rng.normal(0, 1, 2) * speed / np.sqrt(2),
            "colour": tuple(int(c) for c in rng.integers(120, 256, 3)),
        })
    yy, xx = np.mgrid[:h, :w] + 0.5
    frames, truth = [], [[] for _ in objs]
    for _ in range(n_frames):
        img = floor.copy()
        for o, masks in zip(objs, truth):
            (cx, cy), r, a = o["pos"], o["r"], o["aspect"]
            if o["kind"] == "disc":
                m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            elif o["kind"] == "box":
                m = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r * a)
            else:
                m = ((xx - cx) / r) ** 2 + ((yy - cy) / (r * a)) ** 2 <= 1
            for earlier in truth[: truth.index(masks)]:  # a later object is in front: earlier ones lose it
                earlier[-1] &= ~m
            img[m] = o["colour"]
            masks.append(m)
            o["pos"] = o["pos"] + o["vel"]
            for d, lim in ((0, w), (1, h)):
                if not r <= o["pos"][d] <= lim - r:
                    o["vel"][d] *= -1
                    o["pos"][d] = np.clip(o["pos"][d], r, lim - r)
        frames.append(img)
    return Video(frames, truth)


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """``path.avi``: a Motion-JPEG video; a path without a suffix: a folder of ``000000.png`` frames."""
    path = Path(path)
    if not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        for k, f in enumerate(frames):
            cv2.imwrite(str(path / f"{k:06d}.png"), f[..., ::-1])
        return path
    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not out.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    for f in frames:
        out.write(np.ascontiguousarray(f[..., ::-1]))
    out.release()
    return path


__all__ = ["Video", "make_video", "write_video"]
