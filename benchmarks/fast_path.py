"""The fast encoder paths against SamPredictor, same weights, same machine, one run.

    python benchmarks/fast_path.py [--repeats 2] [--json docs/data/fast_path.json] [--skip-vit-b]

Rows (ratio = SamPredictor time / samprompt time, > 1: samprompt faster):

* encoder time per backend and precision (``sam``/``sdpa`` attention, fp32/bf16/int8,
  ONNX Runtime), on ViT-B with random weights at 1024 px and on the built-in
  model at 256 px; bf16 runs only where the CPU has native bf16 (``--force-bf16``
  runs it anyway, on the built-in model);
* agreement of the chosen masks with the fp32 reference (mean IoU; built-in
  model, box and point prompts simulated from generated scenes) and of the
  reference with SamPredictor;
* cached click latency (p50, p95) with the ViT-B decoder, 64 boxes batched
  against a SamPredictor loop;
* segment-everything against ``SamAutomaticMaskGenerator`` on the built-in model
  (one crop, same grid and thresholds), with the share of its masks matched (IoU >= 0.9);
* where the ViT-B encoder's time goes (patch embedding, attention, MLP, neck).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator, SamPredictor

import samprompt.encoders
from timing import machine, machine_line, median_time  # benchmarks/timing.py (scripts run from benchmarks/)
from samprompt import Prompt, Segmenter
from samprompt.masks import iou
from samprompt.models import REGISTRY, build_sam, load_model
from samprompt.simulate import box_from_mask, center_point
from samprompt.steps import model_input
from samprompt.synthetic import make_scene

CONFIGS = [("sam", "fp32"), ("sdpa", "fp32"), ("sam", "bf16"), ("sdpa", "bf16"), ("sam", "int8"), ("sdpa", "int8"),
           ("sdpa", "int8+bf16")]


def encoder_rows(model, image, repeats: int, bf16: bool, onnx_dir: str | None) -> dict:
    """Encoder seconds (median): SamPredictor.set_image, then each Segmenter configuration (cache off).

    The configurations take turns within each repeat, so a slow spell of the machine hits them alike.
    """
    pred = SamPredictor(model)
    runs = {"SamPredictor": lambda: pred.set_image(image)}
    for impl, precision in CONFIGS:
        if "bf16" in precision and not bf16:
            continue
        seg = Segmenter(model, cache_size=0, attn_impl=impl, precision=precision)
        runs[seg.encoder.id] = (lambda s: (lambda: s.embed(image)))(seg)
    if onnx_dir:
        seg = Segmenter(model, cache_size=0, backend="onnx", onnx_dir=onnx_dir)
        runs[seg.encoder.id] = (lambda s: (lambda: s.embed(image)))(seg)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(median_time(fn, 1))
    return {k: round(statistics.median(v), 3) for k, v in times.items()}


def export_timed(model, folder: str) -> float:
    from samprompt.onnx_backend import export_onnx

    t = time.perf_counter()
    export_onnx(model, folder)
    return round(time.perf_counter() - t, 2)


def agreement(model, n_scenes: int, bf16: bool, onnx_dir: str | None) -> dict:
    """Mean IoU of the chosen masks of each configuration with the fp32 reference; reference vs SamPredictor."""
    ref = Segmenter(model, cache_size=0)
    others = {f"{impl}/{p}": Segmenter(model, cache_size=0, attn_impl=impl, precision=p)
              for impl, p in CONFIGS[1:] if "bf16" not in p or bf16}
    if onnx_dir:
        others["onnx/fp32"] = Segmenter(model, cache_size=0, backend="onnx", onnx_dir=onnx_dir)
    ious: dict[str, list[float]] = {k: [] for k in others}
    ious["SamPredictor vs reference"] = []
    pred = SamPredictor(model)
    for seed in range(500_000, 500_000 + n_scenes):
        scene = make_scene(seed)
        gts = scene.masks()
        prompts = [Prompt(box=box_from_mask(g)) for g in gts] + [Prompt(points=center_point(g)[None]) for g in gts]
        want = ref.predict(scene.image, prompts)
        for name, seg in others.items():
            got = seg.predict(scene.image, prompts)
            ious[name] += [iou(a.mask, b.mask) for a, b in zip(want, got)]
        pred.set_image(scene.image)
        for p, w in zip(prompts, want):
            m, s, _ = pred.predict(point_coords=p.points if len(p.points) else None,
                                   point_labels=p.labels if len(p.points) else None, box=p.box,
                                   multimask_output=p.is_ambiguous)
            ious["SamPredictor vs reference"].append(iou(m[int(np.argmax(s))], w.mask))
    return {k: round(float(np.mean(v)), 5) for k, v in ious.items()}


def _clicks(seg, image, n: int) -> list[float]:
    emb = seg.embed(image)
    rng = np.random.default_rng(0)
    h, w = image.shape[:2]
    times = []
    for _ in range(n):
        p = Prompt(points=[(rng.uniform(0, w), rng.uniform(0, h))])
        t = time.perf_counter()
        seg.decode(emb, p)
        times.append(1000 * (time.perf_counter() - t))
    return times


def click_latency(model, image, onnx_dir: str | None, n: int = 50) -> dict:
    """Cached single-click latency (p50/p95, ms; SamPredictor.predict, the Segmenter in torch and ONNX) and
    64 boxes: a SamPredictor loop against one batched call."""
    rng = np.random.default_rng(1)
    h, w = image.shape[:2]
    pred = SamPredictor(model)
    pred.set_image(image)
    ref = []
    for _ in range(n):
        t = time.perf_counter()
        pred.predict(point_coords=np.array([[rng.uniform(0, w), rng.uniform(0, h)]]), point_labels=np.array([1]))
        ref.append(1000 * (time.perf_counter() - t))
    seg = Segmenter(model)
    times = _clicks(seg, image, n)
    out = {"click_SamPredictor_p50_ms": round(float(np.percentile(ref, 50)), 1),
           "click_SamPredictor_p95_ms": round(float(np.percentile(ref, 95)), 1),
           "click_p50_ms": round(float(np.percentile(times, 50)), 1),
           "click_p95_ms": round(float(np.percentile(times, 95)), 1)}
    fast_seg = Segmenter(model, decoder="fast", cache=seg.cache)  # the same embedding, the rearranged decoder
    fast = _clicks(fast_seg, image, n)
    out.update(click_fast_decoder_p50_ms=round(float(np.percentile(fast, 50)), 1),
               click_fast_decoder_p95_ms=round(float(np.percentile(fast, 95)), 1))
    if onnx_dir:
        onnx = _clicks(Segmenter(model, backend="onnx", onnx_dir=onnx_dir), image, n)
        out.update(click_onnx_p50_ms=round(float(np.percentile(onnx, 50)), 1),
                   click_onnx_p95_ms=round(float(np.percentile(onnx, 95)), 1))
    pred.set_image(image)
    boxes = [np.sort(rng.uniform(0, w, 2)).tolist() + np.sort(rng.uniform(0, h, 2)).tolist() for _ in range(64)]
    boxes = [(b[0], b[2], min(b[1] + 1, w), min(b[3] + 1, h)) for b in boxes]
    t = time.perf_counter()
    for b in boxes:
        pred.predict(box=np.array(b), multimask_output=False)
    loop = time.perf_counter() - t
    t = time.perf_counter()
    seg.predict(image, [Prompt(box=b) for b in boxes])
    batched = time.perf_counter() - t
    t = time.perf_counter()
    fast_seg.predict(image, [Prompt(box=b) for b in boxes])
    batched_fast = time.perf_counter() - t
    return {**out, "boxes64_SamPredictor_loop_s": round(loop, 3), "boxes64_samprompt_s": round(batched, 3),
            "boxes64_ratio": round(loop / batched, 2), "boxes64_fast_decoder_s": round(batched_fast, 3),
            "boxes64_fast_decoder_ratio": round(loop / batched_fast, 2)}


def everything(model, n_scenes: int, onnx_dir: str | None = None, decoder: str = "reference") -> dict:
    """segment_everything against SamAutomaticMaskGenerator (one crop, same grid and thresholds)."""
    kw = dict(points_per_side=16, pred_iou_thresh=0.8, stability_score_thresh=0.9, box_nms_thresh=0.7)
    amg = SamAutomaticMaskGenerator(model, points_per_batch=64, **kw)
    t_ref = t_ours = 0.0
    matched = total = ours_n = 0
    for seed in range(500_000, 500_000 + n_scenes):
        image = make_scene(seed).image
        t = time.perf_counter()
        ref = [r["segmentation"] for r in amg.generate(image)]
        t_ref += time.perf_counter() - t
        seg = Segmenter(model, cache_size=0, backend="onnx" if onnx_dir else "torch", onnx_dir=onnx_dir,
                        decoder=decoder)
        t = time.perf_counter()
        ours = seg.segment_everything(image, **kw).masks
        t_ours += time.perf_counter() - t
        total += len(ref)
        ours_n += len(ours)
        matched += sum(any(iou(r, o) >= 0.9 for o in ours) for r in ref)
    return {"amg_s": round(t_ref, 2), "samprompt_s": round(t_ours, 2), "ratio": round(t_ref / t_ours, 2),
            "reference_masks": total, "samprompt_masks": ours_n, "matched_share": round(matched / max(total, 1), 4)}


def profile_encoder(model, image) -> dict:
    """Seconds per part of one encoder pass (forward hooks): patch embedding, attention, MLP, neck."""
    enc = model.image_encoder
    spent: dict[str, float] = {"patch_embed": 0.0, "attention": 0.0, "mlp": 0.0, "neck": 0.0}
    starts: dict[int, float] = {}
    handles = []

    def watch(module, name):
        handles.append(module.register_forward_pre_hook(lambda m, a: starts.__setitem__(id(m), time.perf_counter())))
        handles.append(module.register_forward_hook(
            lambda m, a, o: spent.__setitem__(name, spent[name] + time.perf_counter() - starts[id(m)])))

    watch(enc.patch_embed, "patch_embed")
    watch(enc.neck, "neck")
    for block in enc.blocks:
        watch(block.attn, "attention")
        watch(block.mlp, "mlp")
    x, _ = model_input(model, image)
    t = time.perf_counter()
    with torch.no_grad():
        enc(x)
    total = time.perf_counter() - t
    for h in handles:
        h.remove()
    spent["other (norms, windows, residuals)"] = total - sum(spent.values())
    return {k: round(v, 3) for k, v in {"total": total, **spent}.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scenes", type=int, default=10, help="generated scenes for agreement and segment-everything")
    p.add_argument("--skip-vit-b", action="store_true", help="only the built-in model (fast)")
    p.add_argument("--skip-tiny", action="store_true", help="only ViT-B; with --json, update that file's rows")
    p.add_argument("--force-bf16", action="store_true", help="run bf16 on the built-in model without native bf16")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    native = samprompt.encoders.bf16_supported(torch.device("cpu"))
    out = {"machine": machine_line(), "machine_detail": machine(), "torch": torch.__version__}
    print(out["machine"], flush=True)
    if args.skip_tiny and args.json and args.json.exists():
        out = {**json.loads(args.json.read_text()), **out}
    tiny = load_model("tiny")
    scene = make_scene(500_000).image
    if args.force_bf16 and not native:
        samprompt.encoders.bf16_supported = lambda device: True
    bf16_tiny = native or args.force_bf16
    if not args.skip_tiny:
        with tempfile.TemporaryDirectory() as d:
            out["tiny_onnx_export_s"] = export_timed(tiny, d)
            out["tiny_encoder_s"] = encoder_rows(tiny, scene, args.repeats * 5, bf16_tiny, d)
            out["tiny_agreement_mIoU"] = agreement(tiny, args.scenes, bf16_tiny, d)
            out["tiny_segment_everything"] = everything(tiny, args.scenes)
            out["tiny_segment_everything_onnx"] = everything(tiny, args.scenes, d)
            out["tiny_segment_everything_fast_decoder"] = everything(tiny, args.scenes, decoder="fast")
    print(json.dumps(out, indent=1), flush=True)
    if not args.skip_vit_b:
        samprompt.encoders.bf16_supported = lambda device: native
        torch.manual_seed(0)
        vit_b = build_sam(REGISTRY["vit_b"].arch)
        big = make_scene(1, size=1024).image
        with tempfile.TemporaryDirectory() as d:
            out["vit_b_onnx_export_s"] = export_timed(vit_b, d)
            out["vit_b_encoder_s"] = encoder_rows(vit_b, big, args.repeats, native, d)
            print(json.dumps(out["vit_b_encoder_s"]), flush=True)
            out["vit_b_decoder"] = click_latency(vit_b, big, d)
        out["vit_b_encoder_profile_s"] = profile_encoder(vit_b, big)
    for key in ("tiny_encoder_s", "vit_b_encoder_s"):
        if key in out:
            ref = out[key]["SamPredictor"]
            out[key.replace("_s", "_ratio")] = {k: round(ref / v, 2) for k, v in out[key].items()}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
