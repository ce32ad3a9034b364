"""Frames per second of the annotator's video propagation (box propagation, built-in model).

    python benchmarks/video_propagation.py [--frames 40] [--out docs/data/video_propagation.json]

A generated video (shapes drifting over a textured floor, known truth) is written as a
Motion-JPEG ``.avi`` at 256 x 192 and at 1920 x 1080; one object is boxed on the middle
frame and followed forward and backward, as the propagate button does. The time covers
decoding the frames from the file, the encoder, the decoder and the masks at full size;
fps = frames reached / seconds. Mean IoU against the truth is given beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from timing import machine, machine_line

from samprompt import Segmenter
from samprompt.annotate.video import VideoAnnotation
from samprompt.synthetic.videos import make_video, write_video


def run(size: tuple[int, int], frames: int, folder: Path) -> dict:
    v = make_video(4, n_frames=frames, size=size, n_objects=2, speed=5.0 * size[0] / 192)
    path = write_video(folder / f"v{size[0]}.avi", v.frames)
    doc = VideoAnnotation(Segmenter("tiny"), path, "v")  # a fresh segmenter: no embedding cached
    key = frames // 2
    truth = v.truth[0]
    ys, xs = np.nonzero(truth[key])
    doc.open_slice(key)
    doc.ann.set_box((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    t = time.perf_counter()
    doc.propagate()
    seconds = time.perf_counter() - t
    got = doc.frames[doc.order[0]]
    ious = [(got[k] & truth[k]).sum() / (got[k] | truth[k]).sum() if k in got else 0.0 for k in range(frames)]
    return {"size": f"{size[1]}x{size[0]}", "frames": frames, "reached": len(got), "seconds": round(seconds, 2),
            "fps": round(len(got) / seconds, 1), "mean_iou": round(float(np.mean(ious)), 3),
            "frames_decoded": doc.view.decoded}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    out = {"machine": machine(), "model": "tiny", "method": "box (PropagationSettings.video())"}
    print(machine_line(out["machine"]), flush=True)
    with tempfile.TemporaryDirectory() as d:
        for size in ((192, 256), (1080, 1920)):
            row = run(size, args.frames, Path(d))
            out[row["size"]] = row
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
