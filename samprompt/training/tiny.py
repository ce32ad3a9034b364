"""Train the built-in ``tiny`` SAM from scratch on synthetic scenes.

    python -m samprompt.train_tiny --out runs/tiny --minutes 110

The run is resumable: it writes ``OUT/last.pt`` (weights, optimiser, step and
elapsed time) every ``--save-every`` steps and picks it up again when started
with the same ``--out``. ``OUT/best.safetensors`` holds the weights with the best
validation score so far and ``OUT/log.jsonl`` one JSON line per log event.

Recipe (after SAM, scaled down): AdamW, linear warm-up then a cosine decay over
the time budget; each step encodes ``--batch`` scenes, prompts up to
``--objects`` objects per scene with a box or a single point, then adds up to
two corrective clicks sampled from the error region with the previous low-res
logits as mask input. Loss: 20 x focal + dice on the best of the three
multimask outputs (single-point prompts) or on the single-mask output (other
prompts), plus MSE on the IoU head. Training seeds start at 1,000,000;
validation and the held-out sets use seeds below that.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models import TINY_ARCH, build_sam, save_safetensors
from ..simulate import box_from_mask, center_point, random_point
from ..steps import model_input, run_decoder
from ..synthetic import make_scene
from .losses import mask_iou, sam_loss
from .params import trainable

TRAIN_SEED0 = 1_000_000


def _prep_scene(seed: int, rng: np.random.Generator, img_size: int):
    """A training scene: square, or (30%) with a shorter side that preprocessing pads."""
    if rng.random() < 0.3:
        short = int(rng.integers(img_size // 2, img_size))
        size = (img_size, short) if rng.random() < 0.5 else (short, img_size)
    else:
        size = (img_size, img_size)
    return make_scene(seed, "default", size)


def _to_batch(model, scenes, device) -> torch.Tensor:
    """The scenes as one batch of model inputs (resized, normalised and padded as at inference)."""
    return torch.cat([model_input(model, s.image, device)[0] for s in scenes])


def make_scenes(step: int, batch: int, seed: int, img_size: int) -> list:
    """The training scenes of one step (a function of the step alone, so workers can make them ahead)."""
    rng = np.random.default_rng([seed, step, 1])
    seeds = TRAIN_SEED0 + step * batch + np.arange(batch)
    return [_prep_scene(int(s), rng, img_size) for s in seeds]


class _Prefetch:
    """Scenes for the coming steps, made by a pool of worker processes ``depth`` steps ahead."""

    def __init__(self, workers: int, batch: int, seed: int, img_size: int, depth: int = 4):
        import multiprocessing as mp
        from collections import deque
        from functools import partial

        self.pool = mp.get_context("fork").Pool(workers)
        self.make = partial(make_scenes, batch=batch, seed=seed, img_size=img_size)
        self.pending: deque = deque()
        self.depth = depth
        self.next = None

    def get(self, step: int) -> list:
        if self.next != step:  # first call (or a jump): restart the queue at this step
            self.pending.clear()
            self.next = step
        while len(self.pending) < self.depth:
            self.pending.append(self.pool.apply_async(self.make, (self.next,)))
            self.next += 1
        return self.pending.popleft().get()

    def close(self) -> None:
        self.pool.terminate()


def _decode(model, emb, points, boxes, mask_in):
    """All four mask outputs and IoU predictions, for the losses."""
    return run_decoder(model.prompt_encoder, model.mask_decoder, emb, points=points, boxes=boxes, masks=mask_in)


def _sample_click(pred: np.ndarray, gt: np.ndarray, rng: np.random.Generator):
    fn = gt & ~pred
    fp = pred & ~gt
    n_fn, n_fp = int(fn.sum()), int(fp.sum())
    if n_fn + n_fp == 0:
        return random_point(gt, rng), 1
    if rng.random() < n_fn / (n_fn + n_fp):
        return random_point(fn, rng), 1
    return random_point(fp, rng), 0


def train_step(model, scenes, rng, args, device) -> dict:
    """One step: encode the scenes, then decode the objects of all scenes prompted alike together.

    Each scene draws its prompt kind (box or point) and its number of rounds (1-3); the
    objects of all box scenes, and of all point scenes, are decoded in one call per round
    (one embedding row per object), which keeps a GPU busy at large batches.
    """
    img_size = model.image_encoder.img_size
    emb = model.image_encoder(_to_batch(model, scenes, device))
    plans = []
    for b, scene in enumerate(scenes):
        ids = rng.permutation(scene.num_objects)[: args.objects] + 1
        plans.append((b, np.stack([scene.labels == i for i in ids]), rng.random() < 0.5,
                      1 + int(rng.choice([0, 1, 2], p=[0.4, 0.35, 0.25]))))
    total, n_terms = 0.0, 0
    iou0, iou_last = [], []
    for use_box in (True, False):
        group = [pl for pl in plans if pl[2] == use_box]
        if not group:
            continue
        owner = np.concatenate([[b] * len(g) for b, g, _, _ in group])
        rounds = np.concatenate([[r] * len(g) for _, g, _, r in group])
        gts = [m for _, g, _, _ in group for m in g]  # (h, w) each, as the scene's size
        full = torch.zeros(len(gts), 1, img_size, img_size, device=device)
        for i, g in enumerate(gts):
            full[i, 0, : g.shape[0], : g.shape[1]] = torch.from_numpy(g)
        target = F.interpolate(full, (args.loss_size, args.loss_size), mode="area")[:, 0]
        n = len(gts)
        boxes = None
        if use_box:
            boxes = torch.tensor(np.stack([box_from_mask(g, 0.1, rng) for g in gts]), dtype=torch.float32, device=device)
            coords, labels = np.zeros((n, 0, 2)), np.zeros((n, 0), np.int64)
        else:
            coords, labels = np.stack([random_point(g, rng) for g in gts])[:, None], np.ones((n, 1), np.int64)
        mask_in = None
        live = np.arange(n)
        for r in range(int(rounds.max())):
            live = live[rounds[live] > r]
            idx_t = torch.as_tensor(live, device=device)
            pts = None
            if coords.shape[1]:
                pts = (torch.tensor(coords[live], dtype=torch.float32, device=device),
                       torch.tensor(labels[live], dtype=torch.int64, device=device))
            logits, iou = _decode(model, emb[torch.as_tensor(owner[live], device=device)], pts,
                                  None if boxes is None else boxes[idx_t],
                                  None if mask_in is None else mask_in[idx_t])
            up = F.interpolate(logits, (args.loss_size, args.loss_size), mode="bilinear", align_corners=False)
            if not use_box and r == 0:  # one point: ambiguous, the best of the three multimask outputs
                loss, sel = sam_loss(up[:, 1:], iou[:, 1:], target[idx_t], **args.loss_kw)
                sel = sel + 1
            else:
                loss, sel = sam_loss(up, iou, target[idx_t], select="first", **args.loss_kw)
            total = total + loss
            n_terms += 1
            chosen = up[torch.arange(len(live), device=device), sel]
            ious = mask_iou(chosen, target[idx_t]).tolist()
            if r == 0:
                iou0 += ious
            iou_last += [v for v, j in zip(ious, live) if rounds[j] == r + 1]
            if not (rounds[live] > r + 1).any():
                break
            pred = F.interpolate(chosen.detach()[:, None], (img_size, img_size), mode="bilinear", align_corners=False)
            pred = (pred[:, 0] > 0).cpu().numpy()
            new = [_sample_click(p[: gts[j].shape[0], : gts[j].shape[1]], gts[j], rng) for p, j in zip(pred, live)]
            grown_c = np.zeros((n, coords.shape[1] + 1, 2))
            grown_l = np.zeros((n, coords.shape[1] + 1), np.int64)
            grown_c[:, :-1], grown_l[:, :-1] = coords, labels
            grown_c[live, -1] = [c for c, _ in new]
            grown_l[live, -1] = [lab for _, lab in new]
            coords, labels = grown_c, grown_l
            low = logits[torch.arange(len(live), device=device), sel][:, None].detach()
            mask_in = torch.zeros(n, *low.shape[1:], device=device)
            mask_in[idx_t] = low
    loss = total / max(n_terms, 1)
    return {"loss": loss, "iou0": float(np.mean(iou0)), "iou_last": float(np.mean(iou_last))}


@torch.no_grad()
def validate(model, n: int = 48, device="cpu") -> dict:
    """Box and centre-point mIoU on held-out scenes (seeds 0..n-1)."""
    model.eval()
    img_size = model.image_encoder.img_size
    box_ious, pt_ious = [], []
    for seed in range(n):
        scene = make_scene(seed, "default", img_size)
        emb = model.image_encoder(model_input(model, scene.image, device)[0])
        gts = scene.masks()
        target = torch.from_numpy(gts).float().to(device)
        boxes = torch.tensor(np.stack([box_from_mask(g) for g in gts]), dtype=torch.float32, device=device)
        logits, _ = _decode(model, emb, None, boxes, None)
        up = F.interpolate(logits, (img_size, img_size), mode="bilinear", align_corners=False)
        box_ious += mask_iou(up[:, 0], target).tolist()
        pts = torch.tensor(np.stack([center_point(g) for g in gts])[:, None], dtype=torch.float32, device=device)
        lab = torch.ones(len(gts), 1, dtype=torch.int64, device=device)
        logits, iou = _decode(model, emb, (pts, lab), None, None)
        up = F.interpolate(logits[:, 1:], (img_size, img_size), mode="bilinear", align_corners=False)
        best = iou[:, 1:].argmax(1)
        pt_ious += mask_iou(up[torch.arange(len(gts)), best], target).tolist()
    model.train()
    return {"val_box": float(np.mean(box_ious)), "val_point": float(np.mean(pt_ious))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m samprompt.train_tiny", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="run folder (resumed if it holds last.pt)")
    p.add_argument("--minutes", type=float, default=110.0, help="wall-clock budget; the LR schedule follows it")
    p.add_argument("--max-steps", type=int, default=10**9, help="stop after this many steps")
    p.add_argument("--batch", type=int, default=8, help="scenes per step")
    p.add_argument("--objects", type=int, default=6, help="objects prompted per scene")
    p.add_argument("--loss-size", type=int, default=128, help="side at which mask losses are computed")
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=300, help="warm-up steps")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: cuda when there is one, else cpu)")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that make the scenes of the coming steps (0: made in the training process)")
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--val-scenes", type=int, default=48, help="validation scenes (seeds 0..N-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", type=Path, help="start from these weights (e.g. the packaged tiny.safetensors)")
    p.add_argument("--only", metavar="PREFIX",
                   help="train only the parameters whose name starts with PREFIX (several: a,b) "
                        "(e.g. mask_decoder.iou_prediction_head: calibrate the IoU head, masks unchanged)")
    p.add_argument("--focal-weight", type=float, default=20.0)
    p.add_argument("--focal-gamma", type=float, default=2.0, help="0 turns the focal term into plain BCE")
    p.add_argument("--dice-weight", type=float, default=1.0)
    args = p.parse_args(argv)
    args.loss_kw = dict(focal_weight=args.focal_weight, focal_gamma=args.focal_gamma, dice_weight=args.dice_weight)

    torch.set_num_threads(args.threads)
    # worker processes are forked before the model touches a GPU
    prefetch = _Prefetch(args.workers, args.batch, args.seed, TINY_ARCH.img_size) if args.workers else None
    if str(args.device).startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    model = build_sam(TINY_ARCH).to(device).train()
    try:
        params = trainable(model, args.only)
    except ValueError as exc:
        p.error(str(exc))
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    step, elapsed, best = 0, 0.0, -1.0
    last = args.out / "last.pt"
    if args.init is not None and not last.exists():
        from ..models import read_state_dict

        model.load_state_dict(read_state_dict(args.init))
        print(f"initialised from {args.init}", flush=True)
    if last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        step, elapsed, best = int(ck["step"]), float(ck["elapsed"]), float(ck["best"])
        print(f"resumed at step {step}, {elapsed / 60:.1f} min elapsed, best {best:.4f}", flush=True)
    budget = args.minutes * 60
    log = open(args.out / "log.jsonl", "a")
    t_start = time.time() - elapsed
    while step < args.max_steps and (time.time() - t_start) < budget:
        frac = (time.time() - t_start) / budget
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        rng = np.random.default_rng([args.seed, step])
        if prefetch is not None:
            scenes = prefetch.get(step)
        else:
            scenes = make_scenes(step, args.batch, args.seed, TINY_ARCH.img_size)
        out = train_step(model, scenes, rng, args, device)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 10 == 0:
            rec = {"step": step, "min": round((time.time() - t_start) / 60, 2), "lr": lr,
                   "loss": round(out["loss"].item(), 4), "iou0": round(out["iou0"], 4), "iou_last": round(out["iou_last"], 4)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(rec, flush=True)
        if step % args.val_every == 0:
            val = validate(model, args.val_scenes, device=device)
            score = (val["val_box"] + val["val_point"]) / 2
            rec = {"step": step, **{k: round(v, 4) for k, v in val.items()}}
            if score > best:
                best = score
                save_safetensors(model, args.out / "best.safetensors")
                rec["best"] = True
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(rec, flush=True)
        if step % args.save_every == 0:
            tmp = last.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "step": step,
                        "elapsed": time.time() - t_start, "best": best}, tmp)
            tmp.replace(last)
    val = validate(model, args.val_scenes, device=device)
    score = (val["val_box"] + val["val_point"]) / 2
    if score > best:
        best = score
        save_safetensors(model, args.out / "best.safetensors")
    save_safetensors(model, args.out / "final.safetensors")
    torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "step": step,
                "elapsed": time.time() - t_start, "best": best}, last)
    log.write(json.dumps({"step": step, "final": True, **val}) + "\n")
    log.close()
    if prefetch is not None:
        prefetch.close()
    print("done", step, val, flush=True)


def package(src: str | Path, card: dict | None = None) -> Path:
    """Copy trained weights into the package as ``weights/tiny.safetensors`` + ``tiny.json`` (sha256, card)."""
    import shutil

    from ..models import sha256_file, weights_path

    dest = weights_path("tiny")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    info = {"name": "tiny", "sha256": sha256_file(dest), "bytes": dest.stat().st_size, **(card or {})}
    dest.with_name("tiny.json").write_text(json.dumps(info, indent=1) + "\n")
    return dest


if __name__ == "__main__":
    main()
