"""What runs on each process of a job: building the Segmenter, segmenting one item, writing its outputs."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PromptError, SampromptError
from ..images import to_rgb_uint8
from ..masks import clean_mask, drop_repeats
from ..prompts import prompts_to_json
from .items import WorkItem
from .manifest import sha256_of
from .writers import ItemResult, make_writers


@dataclass
class SegmenterSpec:
    """How each process builds its Segmenter: picklable, so a Dask worker can build its own.

    ``model``: registry name or checkpoint path; ``learned``: a learned-prompt folder or None;
    ``threads``: torch threads in the process that builds it (None leaves torch's choice);
    ``precision`` and ``attn_impl``: the encoder's (see :class:`~samprompt.segmenter.Segmenter`);
    ``family``: ``"medsam"`` for a MedSAM checkpoint given by path (else read from the checkpoint);
    ``decoder``: the Segmenter's (None: its default).
    """

    model: str = "tiny"
    learned: str | None = None
    threads: int | None = None
    precision: str = "fp32"
    attn_impl: str = "sam"
    onnx_dir: str | None = None
    family: str | None = None
    decoder: str | None = None

    def build(self):
        import torch

        from ..learned import LearnedPrompt
        from ..models import load_model
        from ..segmenter import Segmenter

        if self.threads:
            torch.set_num_threads(self.threads)
        model = load_model(self.model, family=self.family)
        learned = LearnedPrompt.load(self.learned, model) if self.learned else None
        return Segmenter(model, learned=learned, cache_size=2, precision=self.precision, attn_impl=self.attn_impl,
                         backend="onnx" if self.onnx_dir else "torch", onnx_dir=self.onnx_dir, decoder=self.decoder)

    def stamp(self) -> dict:
        """What made the outputs, known without loading the model: model, learned prompt, encoder ids."""
        from ..backends import make_encoder
        from ..learned import LearnedPrompt
        from ..models import checkpoint_family, checkpoint_id

        family = checkpoint_family(self.model, self.family)
        precision, attn_impl = self.precision, self.attn_impl
        if precision == "fast":  # as the Segmenter resolves it (SAM's ViT families: sam, medsam)
            import torch

            from ..encoders import fast_settings

            precision, attn_impl = fast_settings(torch.device("cpu"), vit=family in ("sam", "medsam"))
        stamp = {"model_id": checkpoint_id(self.model),
                 "learned_id": LearnedPrompt.id_of(self.learned) if self.learned else None,
                 "encoder": make_encoder(precision, attn_impl, "onnx" if self.onnx_dir else "torch",
                                         self.onnx_dir).id}
        return family_stamp(stamp, family)


def family_stamp(stamp: dict, family: str) -> dict:
    """A job stamp with the model family, named for every family but SAM (whose manifests stay as they were)."""
    return stamp if family == "sam" else {**stamp, "family": family}


@dataclass
class JobSettings:
    """What every item of a job is run with (besides its prompts), and how an item is run.

    This class runs 2D images (:func:`compute_item`, :func:`write_item`); a domain
    subclasses it (a picklable dataclass, so Dask workers get it) and overrides
    :meth:`compute`, :meth:`write`, :meth:`finalize`, :meth:`planned_outputs` and
    :meth:`prepare` for its own items, e.g. :class:`samprompt.domains.medical.VolumeJob`.
    """

    unit = "image"  # what the progress bar counts
    verb = "segment"  # what the progress bar says it does

    formats: list[str] = field(default_factory=lambda: ["png"])
    classes: list[str] = field(default_factory=lambda: ["object"])
    category_ids: dict = field(default_factory=dict)  # class -> COCO id kept from the input (a detector's)
    min_area: int = 0
    auto: dict = field(default_factory=dict)  # segment_everything keyword arguments

    def prepare(self, seg, items: list[WorkItem]) -> None:
        """Job-wide work before any item runs, on the client (e.g. fitting a memory bank on normal images).

        Called only when some item is to run. What it computes must live in attributes that are
        not dataclass fields (they are not part of the config hash) and must pickle, so Dask
        workers get it with the settings.
        """

    def prompts_json(self, item: WorkItem):
        """The item's prompts as JSON-able data (part of its config hash)."""
        return None if item.prompts is None else prompts_to_json(item.prompts)

    def config_id(self, item: WorkItem) -> str:
        """Hash of the settings and the item's prompts: a rerun with other ones redoes the item."""
        doc = {"settings": asdict(self), "kind": type(self).__name__, "prompts": self.prompts_json(item),
               "image_size": item.image_size}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def compute(self, seg, item: WorkItem) -> tuple[dict, object]:
        """The model's part of an item: (its manifest line so far, a result or None when it failed)."""
        return compute_item(seg, item, self)

    def write(self, rec: dict, result, item: WorkItem, out: Path) -> dict:
        """Write an item's outputs atomically and list them with their hashes in ``rec``."""
        return write_item(rec, result, item, self, out)

    def finalize(self, out: Path, items: list[WorkItem], done: dict[str, dict]) -> None:
        """Job-wide files, from the items whose last manifest line says done."""
        for writer in make_writers(self.formats, self.classes, self.category_ids):
            writer.finalize(out, items, done)

    def planned_outputs(self, item: WorkItem, out: Path) -> list[Path]:
        """Files the item will write (checked against the inputs before the job starts)."""
        return [out / f"{item.id}.png", out / f"{item.id}_overlay.png", out / f"{item.id}.prompts.json"]

    def job_outputs(self, out: Path) -> list[Path]:
        """Job-wide files :meth:`finalize` writes (checked with the items' outputs)."""
        return ([out / "coco.json"] if "coco" in self.formats else []) + (
            [out / "classes.txt"] if "yolo" in self.formats else [])


def segment_item(seg, item: WorkItem, settings: JobSettings, out: Path) -> dict:
    """Segment one item and write its outputs; returns its manifest line (never raises on bad input)."""
    return settings.write(*settings.compute(seg, item), item, out)


def new_record(seg, item: WorkItem) -> dict:
    """An item's manifest line before it runs: its id and what runs it."""
    return family_stamp({"id": item.id, "status": "done", "outputs": {}, "error": None, "n_masks": 0,
                         "model_id": seg.model_id, "learned_id": seg.learned_id, "encoder": seg.encoder.id},
                        seg.family.name)


def record_outputs(rec: dict, paths: list[Path], out: Path) -> None:
    """List written files with their hashes in an item's manifest line."""
    rec["outputs"] = {p.relative_to(out).as_posix(): sha256_of(p) for p in paths}


def record_failure(rec: dict, exc: Exception) -> None:
    """Mark an item's manifest line failed, with a message fit for the user."""
    if isinstance(exc, SampromptError):
        rec.update(status="failed", error=str(exc))
    elif isinstance(exc, OSError):
        rec.update(status="failed", error=f"cannot write outputs: {exc}")
    else:  # a bug on one image must not stop a batch; it is recorded
        rec.update(status="failed", error=f"{type(exc).__name__}: {exc}")


def compute_timed(seg, item: WorkItem, run) -> tuple[dict, object]:
    """An item's model part: ``run(rec)`` returns its result and may add to its manifest line ``rec``;
    an error becomes the item's recorded failure (result None). The time taken goes in ``rec["seconds"]``."""
    t0 = time.perf_counter()
    rec = new_record(seg, item)
    result = None
    try:
        result = run(rec)
    except Exception as exc:
        record_failure(rec, exc)
    rec["seconds"] = time.perf_counter() - t0
    return rec, result


def write_timed(rec: dict, result, out: Path, write) -> dict:
    """Run ``write()`` (which returns the paths it wrote) when there is a result, list the paths with
    their hashes, record an error as the item's failure, and add the time taken to ``rec["seconds"]``."""
    t0 = time.perf_counter()
    if result is not None:
        try:
            record_outputs(rec, write(), out)
        except Exception as exc:
            record_failure(rec, exc)
    rec["seconds"] = round(rec["seconds"] + time.perf_counter() - t0, 4)
    return rec


def compute_item(seg, item: WorkItem, settings: JobSettings) -> tuple[dict, ItemResult | None]:
    """The model's part of an item: (its manifest line so far, its result or None when it failed)."""
    t0 = time.perf_counter()
    rec = new_record(seg, item)
    result = None
    try:
        image = to_rgb_uint8(item.input)
        if item.image_size is not None and tuple(item.image_size) != image.shape[:2]:
            raise PromptError(f"the prompts were made for an image of {item.image_size[1]}x{item.image_size[0]} "
                              f"(W x H); {item.name} is {image.shape[1]}x{image.shape[0]}")
        if item.prompts is None:
            res = seg.segment_everything(image, **settings.auto)
            masks, scores, classes, used = res.masks, res.scores, [None] * len(res.masks), []
        else:
            results = seg.predict(image, item.prompts)
            masks = np.stack([r.mask for r in results])
            scores = np.array([r.score for r in results])
            classes, used = [p.label for p in item.prompts], item.prompts
        if settings.min_area and len(masks):
            masks = np.stack([clean_mask(m, min_island=settings.min_area, max_hole=settings.min_area) for m in masks])
            if item.prompts is None:  # cleaning can make segment-everything's masks equal, or leave slivers
                keep = drop_repeats(masks, scores, min_area=settings.min_area)
                masks, scores = masks[keep].reshape(-1, *image.shape[:2]), np.asarray(scores)[keep]
                classes = [None] * len(masks)
        result = ItemResult(image, masks.reshape(-1, *image.shape[:2]), scores, classes, used)
        rec["n_masks"] = int(len(masks))
        rec["scores"] = [round(float(v), 4) for v in scores]
    except Exception as exc:
        record_failure(rec, exc)
    rec["seconds"] = time.perf_counter() - t0
    return rec, result


def write_item(rec: dict, result: ItemResult | None, item: WorkItem, settings: JobSettings, out: Path) -> dict:
    """The writing part of an item: its outputs, atomically, and their hashes in its manifest line."""
    t0 = time.perf_counter()
    if result is not None:
        try:
            paths: list[Path] = []
            for writer in make_writers(settings.formats, settings.classes, settings.category_ids):
                paths += writer.write(out, item, result)
            record_outputs(rec, paths, out)
        except Exception as exc:
            record_failure(rec, exc)
    rec["seconds"] = round(rec["seconds"] + time.perf_counter() - t0, 4)
    return rec
