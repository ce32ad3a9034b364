"""Defect detection on inspection images (extra ``defects``: scikit-learn): anomaly maps from the frozen SAM
encoder -> generated point and box prompts -> SAM masks, with MVTec-AD metrics.

    cats = find_categories("mvtec/")                         # the MVTec-AD layout, or a plain folder
    job = category_job(cats[0], shots=4)                     # PatchCore bank on 4 normal images (0: zero-shot)
    run_job(category_items(cats[0]), "out/bottle", settings=job)   # maps, masks, metrics.json, report.html
"""

from .anomaly import GivenMap, MutualScoring, PatchCore, PatchFeatures, greedy_coreset
from .data import Category, TestImage, find_categories, read_category
from .generate import DefectResult, DefectSettings, map_to_prompts, segment_defects
from .job import DefectJob, category_items, category_job
from .metrics import f1, image_auroc, pixel_auroc, pixel_f1_max, pro

__all__ = [
    "Category", "DefectJob", "DefectResult", "DefectSettings", "GivenMap", "MutualScoring", "PatchCore",
    "PatchFeatures", "TestImage", "category_items", "category_job", "f1", "find_categories", "greedy_coreset",
    "image_auroc", "map_to_prompts", "pixel_auroc", "pixel_f1_max", "pro", "read_category", "segment_defects",
]
