"""Work items of a batch job: which image, which prompts, which output name.

Per-image prompts for a folder come from one of (:func:`prompts_for_images`):

* a prompts JSON document (schema of :mod:`samprompt.prompts`): with an ``image``
  key it applies to that image only, without one to every image;
* a folder of ``STEM.prompts.json`` files (what ``samprompt segment`` writes);
* a COCO dataset file with ``images`` and ``annotations`` carrying ``bbox``
  (what detectors and labelling tools export): each annotation becomes a box
  prompt ``(x, y, x + w, y + h)`` for its image, its category name the object's
  class; annotations with a ``score`` under ``min_score`` are dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PromptError, SampromptError
from ..prompts import Prompt, image_size_of, prompts_from_json, read_json


@dataclass
class WorkItem:
    """One image of a job.

    ``id``: the output stem, unique within the job (``pic``, or ``pic_jpg`` when
    two inputs share the stem ``pic``). ``input``: the image path. ``prompts``:
    the objects to segment; ``None`` means segment-everything and ``[]`` that
    the image has no prompts. ``image_size``: (H, W) the prompts were made for, if known.
    """

    id: str
    input: str
    prompts: list[Prompt] | None
    image_size: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The input's file name (COCO ``file_name``)."""
        return Path(self.input).name


def output_ids(paths: list[Path]) -> list[str]:
    """Unique output stems: the stem, or stem + extension where two inputs share a stem."""
    counts = Counter(p.stem for p in paths)
    ids = [p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}" for p in paths]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    if dupes:
        raise SampromptError(f"inputs give the same output name {dupes[0]!r}; rename one of them")
    return ids


def _coco_prompts(doc: dict, min_score: float) -> dict[str, list[Prompt]]:
    images = {im.get("id"): im for im in doc.get("images", []) if isinstance(im, dict)}
    cats = {c.get("id"): c.get("name") for c in doc.get("categories", []) if isinstance(c, dict)}
    out: dict[str, list[Prompt]] = {str(im.get("file_name")): [] for im in images.values()}
    for k, ann in enumerate(doc.get("annotations", [])):
        if not isinstance(ann, dict) or "bbox" not in ann:
            raise PromptError(f"COCO annotation {k} has no bbox")
        if float(ann.get("score", 1.0)) < min_score:
            continue
        im = images.get(ann.get("image_id"))
        if im is None:
            raise PromptError(f"COCO annotation {k} refers to image_id {ann.get('image_id')!r}, not in 'images'")
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (TypeError, ValueError):
            raise PromptError(f"COCO annotation {k}: bbox must be [x, y, w, h], got {ann['bbox']!r}") from None
        name = cats.get(ann.get("category_id"))
        out[str(im.get("file_name"))].append(Prompt(box=(x, y, x + w, y + h), label=name))
    return out


def coco_categories(source: str | Path | None) -> dict[str, int]:
    """The categories of a COCO prompts file, name -> id in id order ({} for any other source): a job keeps
    them, so its COCO output uses the input's ids and its YOLO ``classes.txt`` lists them in that order."""
    if source is None or Path(source).is_dir():
        return {}
    doc = read_json(source)
    if not (isinstance(doc, dict) and "images" in doc and "annotations" in doc):
        return {}
    cats = [(c.get("id"), c.get("name")) for c in doc.get("categories", []) if isinstance(c, dict)]
    try:
        ordered = sorted((int(i), str(n)) for i, n in cats if i is not None and n)
    except (TypeError, ValueError):
        raise PromptError("COCO categories need integer ids and names") from None
    return {n: i for i, n in ordered}


def _match(names: dict[str, Any], path: Path) -> Any:
    """The entry of ``names`` (keyed by file name, relative path or stem) for an image path."""
    for key in (path.name, str(path), path.stem):
        if key in names:
            return names[key]
    return None


def prompts_for_images(
    source: str | Path | None, images: list[Path], *, min_score: float = 0.0
) -> dict[Path, tuple[list[Prompt], tuple[int, int] | None]]:
    """Per image: (prompts, the image size they were made for or None). Images not covered get ``[]``."""
    result: dict[Path, tuple[list[Prompt], tuple[int, int] | None]] = {p: ([], None) for p in images}
    if source is None:
        return result
    source = Path(source)
    if source.is_dir():
        for p in images:
            f = source / f"{p.stem}.prompts.json"
            if f.is_file():
                doc = read_json(f)
                result[p] = (prompts_from_json(doc), image_size_of(doc) if isinstance(doc, dict) else None)
        return result
    doc = read_json(source)
    if isinstance(doc, dict) and "images" in doc and "annotations" in doc:
        per_name = _coco_prompts(doc, min_score)
        for p in images:
            found = _match(per_name, p)
            if found is not None:
                result[p] = (found, None)
        if per_name and images and not any(_match(per_name, p) is not None for p in images):
            raise PromptError(f"none of the {len(per_name)} images of {source.name} (e.g. {next(iter(per_name))!r}) "
                              f"is among the inputs (e.g. {images[0].name!r}); its file_name is matched by file "
                              "name, relative path or stem")
        return result
    prompts = prompts_from_json(doc)
    size = image_size_of(doc) if isinstance(doc, dict) else None
    target = doc.get("image") if isinstance(doc, dict) else None
    for p in images:
        if target is None or target in (p.name, str(p), p.stem):
            result[p] = (prompts, size)
    if target is not None and not any(result[p][0] for p in images):
        raise PromptError(f"the prompts in {source} are for image {target!r}, which is not among the inputs")
    return result
