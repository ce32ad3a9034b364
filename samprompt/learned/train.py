"""Train a learned prompt on a labelled folder with SAM frozen (``samprompt tune``).

Each step takes a few training images, augments image and label map together
(albumentations: flips, 90-degree turns, small affine changes, colour jitter),
then simulates prompts from the augmented masks, so boxes and points always
match the pixels: per image, a jittered box per object or one positive point
per object (``prompts="mixed"``, half and half), or only boxes or only points.
Loss: SAM's focal + dice (and IoU-head MSE). Only the prompt's parameters are
optimised (AdamW). After every epoch the prompt is scored on the validation
folder (box prompts, mIoU) and the best one is kept in ``out``, with
``curve.png`` (loss and validation mIoU per epoch).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam

from ..errors import ConfigError, ImageError
from ..cache import Embedding
from ..evaluation import evaluate_folder
from ..families import family_of
from ..images import iter_labelled, read_label_map, to_rgb_uint8
from ..io import atomic_write_text, save_figure
from ..masks import from_label_map
from ..segmenter import Segmenter
from ..simulate import box_from_mask, random_point
from ..steps import run_decoder
from ..training.losses import sam_loss
from .config import DEFAULT_LR
from .prompt import CONFIG_NAME, WEIGHTS_NAME, LearnedPrompt

PROMPT_KINDS = ("mixed", "box", "point")


@dataclass
class TuneResult:
    prompt: LearnedPrompt
    history: list[dict] = field(default_factory=list)
    best_val: float | None = None
    seconds: float = 0.0
    out: Path | None = None
    lr: float = 0.0


def _load_folder(folder: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    items = []
    for _, img_path, mask_path in iter_labelled(folder):
        image, labels = to_rgb_uint8(img_path), read_label_map(mask_path)
        if image.shape[:2] != labels.shape[:2]:
            raise ImageError(f"{mask_path} is {labels.shape[1]}x{labels.shape[0]} but its image {img_path.name} is "
                             f"{image.shape[1]}x{image.shape[0]}; a mask must match its image")
        items.append((image, labels))
    if not items:
        raise ImageError(f"no labelled images in {folder} (expected images/NAME.png + masks/NAME.png)")
    return items


def _augmenter(seed: int):
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Affine(scale=(0.85, 1.15), translate_percent=(-0.05, 0.05), rotate=(-15, 15), p=0.5),
            A.ColorJitter(0.15, 0.15, 0.1, 0.02, p=0.5),
        ],
        seed=seed,
    )


def _step_loss(
    model: Sam, prompt: LearnedPrompt, batch, rng: np.random.Generator, max_objects: int, prompts: str = "mixed"
) -> torch.Tensor:
    """Focal + dice (+ IoU head) loss of one batch, run through the model's family (SAM, SAM 2, ...)."""
    family = family_of(model)
    size = family.img_size(model)
    xs, metas = [], []
    for image, labels in batch:
        x, input_size = family.model_input(model, image)
        xs.append(x)
        metas.append((image.shape[:2], input_size, labels))
    outs = prompt.embed(model, family, torch.cat(xs))
    prompt_encoder = prompt.prompt_encoder if prompt.prompt_encoder is not None else model.prompt_encoder \
        if family.vit_tools else None
    mask_decoder = prompt.mask_decoder if prompt.mask_decoder is not None else model.mask_decoder \
        if family.vit_tools else None
    total, terms = 0.0, 0
    for b, (orig, inp, labels) in enumerate(metas):
        gts, _ = from_label_map(labels)
        if len(gts) == 0:
            continue
        gts = gts[rng.permutation(len(gts))[:max_objects]]
        t = torch.zeros(len(gts), 1, size, size)
        t[:, :, : inp[0], : inp[1]] = F.interpolate(torch.from_numpy(gts).float()[:, None], inp, mode="nearest")
        target = F.interpolate(t, (size // 2, size // 2), mode="area")[:, 0]
        use_box = prompts == "box" or (prompts == "mixed" and rng.random() < 0.5)
        points = boxes = None
        if use_box:
            corners = np.stack([box_from_mask(g, 0.1, rng).reshape(2, 2) for g in gts])
            boxes = family.to_input_frame(corners, inp, orig, "cpu").reshape(-1, 4)
        else:
            pts = np.stack([random_point(g, rng)[None] for g in gts])
            points = (family.to_input_frame(pts, inp, orig, "cpu"), torch.ones(len(gts), 1, dtype=torch.int))
        emb = Embedding(outs["features"][b : b + 1], inp, orig, {k: v[b : b + 1] for k, v in outs.items()
                                                                  if k != "features"})
        if family.vit_tools:  # all four outputs: the single mask first (a box's), then the three of multimask
            logits, iou = run_decoder(prompt_encoder, mask_decoder, emb.features, points=points, boxes=boxes)
            single, multi = slice(None), slice(1, None)
        else:  # the family's decoder as it runs at inference: one mask for a box, its multimask for a point
            logits, iou = family.decode(model, emb, points, boxes, None, multimask=not use_box)
            single = multi = slice(None)
        up = F.interpolate(logits, target.shape[-2:], mode="bilinear", align_corners=False)
        if use_box:
            loss, _ = sam_loss(up[:, single], iou[:, single], target, select="first")
        else:
            loss, _ = sam_loss(up[:, multi], iou[:, multi], target)
        total, terms = total + loss, terms + 1
    return total / max(terms, 1)  # type: ignore[return-value]


def tune(
    model: Sam,
    train_dir: str | Path,
    method: str = "vpt-deep",
    *,
    val_dir: str | Path | None = None,
    out: str | Path | None = None,
    epochs: int = 10,
    batch_size: int = 2,
    lr: float | None = None,
    weight_decay: float = 0.0,
    max_objects: int = 8,
    prompts: str = "mixed",
    seed: int = 0,
    progress: bool = True,
    **config,
) -> TuneResult:
    """Train a :class:`LearnedPrompt` of ``method`` on ``train_dir`` (images/ + masks/).

    ``config`` goes to the method's config dataclass (e.g. ``tokens=8``); ``lr``
    defaults to the method's entry in ``DEFAULT_LR``. ``prompts``: the simulated
    training prompts, ``"mixed"`` (boxes or points), ``"box"`` or ``"point"``. With
    ``out``, the best prompt (by validation mIoU, or the last without ``val_dir``)
    is saved there with ``history.json`` and ``curve.png``.
    """
    from tqdm.auto import tqdm

    if prompts not in PROMPT_KINDS:
        raise ConfigError(f"prompts must be one of {PROMPT_KINDS}, got {prompts!r}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = _load_folder(train_dir)
    if val_dir is not None:
        _load_folder(val_dir)  # a missing or broken validation folder is said now, not after the first epoch
    if lr is None:
        lr = DEFAULT_LR.get(method, 1e-3)
    model.eval()
    LearnedPrompt.freeze_model(model)
    prompt = LearnedPrompt.create(method, model, **config)
    prompt.train()
    params = [p for p in prompt.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    aug = _augmenter(seed)
    steps_per_epoch = max(1, int(np.ceil(len(data) / batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.1)
    result = TuneResult(prompt, lr=lr)
    best_state = None
    t0 = time.perf_counter()
    bar = tqdm(total=epochs * steps_per_epoch, desc=f"tune {method}", disable=not progress)
    for epoch in range(epochs):
        order = rng.permutation(len(data))
        losses = []
        for s in range(steps_per_epoch):
            batch = []
            for i in order[s * batch_size : (s + 1) * batch_size]:
                image, labels = data[i]
                a = aug(image=image, mask=labels.astype(np.int32))
                batch.append((a["image"], a["mask"]))
            loss = _step_loss(model, prompt, batch, rng, max_objects, prompts)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
        if val_dir is not None:
            prompt.eval()
            with torch.no_grad():
                rep = evaluate_folder(Segmenter(model, learned=prompt, cache_size=0), val_dir, prompt="box",
                                      progress=False)
            prompt.train()
            rec["val_mIoU"] = rep.mIoU
            if result.best_val is None or rep.mIoU > result.best_val:
                result.best_val = rep.mIoU
                best_state = {k: v.detach().clone() for k, v in prompt.module.state_dict().items()}
        result.history.append(rec)
    bar.close()
    if best_state is not None:
        prompt.module.load_state_dict(best_state)
    prompt.eval()
    result.seconds = time.perf_counter() - t0
    if out is not None:
        result.out = prompt.save(out)
        atomic_write_text(Path(out) / "history.json", json.dumps(result.history, indent=1))
        plot_curve(result.history, Path(out) / "curve.png", title=method)
    return result


TUNE_OUTPUTS = (WEIGHTS_NAME, CONFIG_NAME, "history.json", "curve.png")  # what tune(out=) writes


def plot_curve(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss (left axis) and validation mIoU (right axis) per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(ep, [h["loss"] for h in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:blue")
    if any("val_mIoU" in h for h in history):
        ax2 = ax.twinx()
        ax2.plot(ep, [h.get("val_mIoU", np.nan) for h in history], "s-", color="tab:orange", label="val mIoU")
        ax2.set_ylabel("val mIoU", color="tab:orange")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)
