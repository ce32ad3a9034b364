"""Inspection data: the MVTec-AD layout, the VisA layout, or a plain folder of images without labels.

* MVTec-AD: a category folder holds ``train/good/*.png`` (normal parts), ``test/good``
  and ``test/DEFECT`` (the images to judge) and ``ground_truth/DEFECT/NAME_mask.png``
  (255 = defect). DATA is a category folder or a folder of category folders (the download).
* VisA: DATA holds ``split_csv/1cls.csv`` (columns ``object,split,label,image,mask``,
  paths relative to DATA) and ``OBJECT/Data/Images/{Normal,Anomaly}``,
  ``OBJECT/Data/Masks/Anomaly`` (non-zero = defect). Its test images are named
  ``good_NAME`` and ``anomaly_NAME``.
* A plain folder of images: one category of test images, without labels (or, for
  ``defects fit``, of good images).

Files that are not images are skipped with a warning; a defect folder without ground
truth is judged without pixel metrics.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ImageError, SampromptError
from ...images import IMAGE_SUFFIXES


@dataclass
class TestImage:
    """One image to judge: its defect kind (``good`` for normal, ``unknown`` without labels) and truth mask."""

    defect: str
    path: Path
    mask: Path | None = None

    @property
    def id(self) -> str:
        """``DEFECT_NAME``: MVTec repeats ``000.png`` in every defect folder."""
        return f"{self.defect}_{self.path.stem}"


@dataclass
class Category:
    name: str
    root: Path
    train_good: list[Path] = field(default_factory=list)
    test: list[TestImage] = field(default_factory=list)
    labelled: bool = True

    @property
    def defects(self) -> list[str]:
        return sorted({t.defect for t in self.test if t.defect != "good"})


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            out.append(p)
        elif p.is_file() and not p.name.startswith("."):
            warnings.warn(f"skipping {p}: not an image file", stacklevel=2)
    return out


def _is_category(folder: Path) -> bool:
    return (folder / "train").is_dir() or (folder / "test").is_dir()


def read_category(root: Path) -> Category:
    """A category folder in the MVTec-AD layout (see the module doc)."""
    cat = Category(root.name, root, _images(root / "train" / "good"))
    test = root / "test"
    for d in sorted(p for p in test.iterdir() if p.is_dir()) if test.is_dir() else []:
        gt = root / "ground_truth" / d.name
        for img in _images(d):
            mask = gt / f"{img.stem}_mask.png"
            cat.test.append(TestImage(d.name, img, mask if d.name != "good" and mask.exists() else None))
    return cat


VISA_SPLIT = Path("split_csv") / "1cls.csv"


def read_visa(root: Path) -> list[Category]:
    """The categories of a VisA download, from its ``split_csv/1cls.csv`` (see the module doc)."""
    import csv

    cats: dict[str, Category] = {}
    with open(root / VISA_SPLIT, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"object", "split", "label", "image"}
    if not rows or not need <= set(rows[0]):
        raise SampromptError(f"{root / VISA_SPLIT} is not a VisA split file: it needs the columns "
                             f"{', '.join(sorted(need))}, mask")
    for k, row in enumerate(rows, 2):
        obj, split, label = row["object"].strip(), row["split"].strip(), row["label"].strip()
        image = root / row["image"].strip()
        cat = cats.setdefault(obj, Category(obj, root / obj))
        if not image.is_file():
            warnings.warn(f"{root / VISA_SPLIT} line {k}: no image {image}", stacklevel=2)
            continue
        if split == "train":
            if label == "normal":
                cat.train_good.append(image)
        else:
            mask = (row.get("mask") or "").strip()
            defect = "good" if label == "normal" else "anomaly"
            cat.test.append(TestImage(defect, image, root / mask if mask and defect != "good" else None))
    for cat in cats.values():
        cat.train_good.sort()
        cat.test.sort(key=lambda t: (t.defect, t.path.name))
    return [cats[k] for k in sorted(cats)]


def find_categories(data: str | Path, names: list[str] | None = None) -> list[Category]:
    """The categories of DATA (see the module doc), filtered by ``names``; an error when none is found."""
    data = Path(data)
    if not data.is_dir():
        raise SampromptError(f"no such folder: {data}")
    if (data / VISA_SPLIT).is_file():
        cats = read_visa(data)
    elif _is_category(data):
        cats = [read_category(data)]
    else:
        cats = [read_category(p) for p in sorted(data.iterdir()) if p.is_dir() and _is_category(p)]
        if not cats:
            imgs = _images(data)
            if not imgs:
                raise ImageError(f"{data} holds no categories (CATEGORY/train/good, CATEGORY/test/...) and no images")
            cats = [Category(data.name, data, [], [TestImage("unknown", p) for p in imgs], labelled=False)]
    if names:
        known = {c.name for c in cats}
        missing = [n for n in names if n not in known]
        if missing:
            raise SampromptError(f"no category {missing[0]!r} in {data}; it has {sorted(known)}")
        cats = [c for c in cats if c.name in names]
    return cats
