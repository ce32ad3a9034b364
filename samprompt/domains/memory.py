"""Propagation by memory: SAM 2's video predictor follows objects through slices or video frames.

Where box propagation (:mod:`samprompt.domains.medical.propagate`) prompts each
next slice with a box drawn around the previous mask, SAM 2 carries a memory of
the masks it made and of the prompts it was given, and conditions every frame on
it. This module runs ``sam2.SAM2VideoPredictor`` on frames held in memory
(a volume's slices, a video's frames), with each object's prompt on its key
frame, forward and then backward from the earliest and latest key, exactly as
the reference does it from a folder of JPEG frames.

    masks = propagate_memory(seg, frames, [Start(1, key=12, prompt=Prompt(box=...))])
    masks[1][13]   # (H, W) bool mask of object 1 on frame 13

Frames are resized as the video predictor resizes its frames (PIL, to the
square), which differs slightly from the image predictor's resize. The tracker
runs under bf16 autocast, as the reference is meant to be run: it keeps its
mask memories in bf16.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, PromptError
from ..prompts import Prompt

_LOCK = threading.Lock()  # the frame loader is swapped for the span of init_state


@dataclass(frozen=True)
class Start:
    """One object to follow: its label, its key frame and prompt there (the frame's pixels), and a frame range."""

    label: int
    key: int
    prompt: Prompt
    lo: int = 0
    hi: int | None = None
    extra: tuple[tuple[int, Prompt], ...] = ()  # more prompts on other frames (clicks met on the way)


def video_predictor(seg):
    """The ``SAM2VideoPredictor`` sharing the weights of ``seg``'s SAM 2 model (built once per Segmenter)."""
    if seg.family.name != "sam2":
        raise ConfigError(f"propagation by memory needs a SAM 2 model (e.g. --model sam2.1_hiera_tiny); this is a "
                          f"{seg.family.name} model: use box propagation")
    cached = getattr(seg, "_video_predictor", None)
    if cached is not None:
        return cached
    from sam2.build_sam import build_sam2_video_predictor

    from ..families.build import sam2_config

    state = seg.model.state_dict()
    predictor = build_sam2_video_predictor(sam2_config(state), None, device=str(seg.device), mode="eval")
    predictor.load_state_dict(state, strict=True)
    seg._video_predictor = predictor
    return predictor


def frames_tensor(frames: Sequence[np.ndarray], side: int) -> torch.Tensor:
    """(N, 3, side, side) float frames, normalised as SAM 2's video loader does its JPEG frames."""
    from PIL import Image

    mean = torch.tensor((0.485, 0.456, 0.406), dtype=torch.float32)[:, None, None]
    std = torch.tensor((0.229, 0.224, 0.225), dtype=torch.float32)[:, None, None]
    out = torch.zeros(len(frames), 3, side, side, dtype=torch.float32)
    for i, frame in enumerate(frames):
        img = np.array(Image.fromarray(np.ascontiguousarray(frame)).convert("RGB").resize((side, side))) / 255.0
        out[i] = torch.from_numpy(img).permute(2, 0, 1)
    return (out - mean) / std


def propagate_memory(seg, frames: Sequence[np.ndarray], starts: Sequence[Start],
                     progress: Callable[[int], None] | None = None) -> dict[int, dict[int, np.ndarray]]:
    """Masks of every object on every frame SAM 2's memory reaches: ``{label: {frame: (H, W) bool}}``.

    ``frames``: (H, W, 3) uint8 RGB images of one size; ``starts``: one per object.
    Empty masks and frames outside an object's ``lo``..``hi`` are left out.
    ``progress`` is called with the number of frames done in each pass.
    """
    if not starts:
        raise PromptError("no objects to propagate")
    n = len(frames)
    h, w = frames[0].shape[:2]
    if any(f.shape[:2] != (h, w) for f in frames):
        raise PromptError("frames to propagate must share one size")
    predictor = video_predictor(seg)
    images = frames_tensor(frames, predictor.image_size).to(seg.device)
    import sam2.sam2_video_predictor as video_module

    # SAM 2 keeps its mask memories in bf16 and expects bf16 autocast around the tracker (as its README runs it)
    with _LOCK, torch.inference_mode(), torch.autocast(seg.device.type, dtype=torch.bfloat16), \
            warnings.catch_warnings():
        # without sam2's CUDA extension the tracker skips filling holes of <= 8 px, and warns at every frame
        warnings.filterwarnings("ignore", message=r"(?s).*Skipping the post-processing step")
        original, bar = video_module.load_video_frames, video_module.tqdm
        video_module.load_video_frames = lambda **_: (images, h, w)
        video_module.tqdm = lambda it, *a, **k: it  # its own bars would cut through the job's (and --quiet)
        try:
            state = predictor.init_state(video_path="<frames in memory>")
            for s in starts:
                if not 0 <= s.key < n:
                    raise PromptError(f"object {s.label}: key frame {s.key} is out of range (0 to {n - 1})")
                for k, p in ((s.key, s.prompt), *s.extra):
                    p.validate(h, w)
                    points = p.points if len(p.points) else None
                    predictor.add_new_points_or_box(state, frame_idx=k, obj_id=s.label, points=points,
                                                    labels=p.labels if points is not None else None, box=p.box)
            out: dict[int, dict[int, np.ndarray]] = {s.label: {} for s in starts}
            limits = {s.label: (s.lo, n - 1 if s.hi is None else s.hi) for s in starts}
            for reverse in (False, True):
                done = 0
                for k, ids, logits in predictor.propagate_in_video(state, reverse=reverse):
                    for label, lg in zip(ids, logits):
                        mask = (lg[0] > 0.0).cpu().numpy()
                        lo, hi = limits[label]
                        if lo <= k <= hi and mask.any():
                            out[label][k] = mask
                    done += 1
                    if progress is not None:
                        progress(done)
        finally:
            video_module.load_video_frames, video_module.tqdm = original, bar
    return out


__all__ = ["Start", "frames_tensor", "propagate_memory", "video_predictor"]
