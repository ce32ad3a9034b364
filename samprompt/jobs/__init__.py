"""Batch jobs: work items, writers, a manifest with resume, in-process and Dask executors."""

from .engine import JobSummary, run_job
from .items import WorkItem, output_ids, prompts_for_images
from .manifest import Manifest
from .worker import JobSettings, SegmenterSpec, segment_item
from .writers import FORMATS, ItemResult, Writer, make_writers

__all__ = [
    "FORMATS",
    "ItemResult",
    "JobSettings",
    "JobSummary",
    "Manifest",
    "SegmenterSpec",
    "WorkItem",
    "Writer",
    "make_writers",
    "output_ids",
    "prompts_for_images",
    "run_job",
    "segment_item",
]
