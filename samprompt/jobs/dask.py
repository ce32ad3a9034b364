"""The Dask executor: the same items on a local cluster or a running scheduler (extra ``dask``).

Each worker builds its Segmenter once, in a worker plugin registered with
``client.register_plugin``; items are submitted with a bounded number in
flight and collected with ``as_completed``. A worker lost mid-item makes Dask
run the item again elsewhere (its outputs are written atomically, so nothing
is half-written); an item that kills worker after worker ends as ``failed``.
"""

from __future__ import annotations

import logging

import uuid
from pathlib import Path
from typing import Iterator

from ..errors import require
from .items import WorkItem

PLUGIN = "samprompt-segmenter"


def _plugin_class():
    distributed = require("distributed", "dask")

    class SegmenterPlugin(distributed.WorkerPlugin):
        """Builds one Segmenter per worker, at start-up, with one torch thread unless told."""

        def __init__(self, spec) -> None:
            self.spec = spec
            self.segmenter = None

        def setup(self, worker) -> None:
            import dataclasses

            spec = self.spec if self.spec.threads else dataclasses.replace(self.spec, threads=1)
            self.segmenter = spec.build()

    return SegmenterPlugin


def _run_on_worker(item: WorkItem, settings, out: str) -> dict:
    from distributed import get_worker

    from .worker import segment_item

    seg = get_worker().plugins[PLUGIN].segmenter
    return segment_item(seg, item, settings, Path(out))


def dask_records(
    spec, items: list[WorkItem], settings, out: Path, *, workers: int | None = None, scheduler: str | None = None,
    max_in_flight: int | None = None,
) -> Iterator[dict]:
    """Manifest lines of ``items`` as the cluster finishes them (any order)."""
    distributed = require("distributed", "dask")
    if not items:
        return
    cluster = None
    if scheduler is None:
        # silence_logs: the workers' own warnings (a task cancelled by Ctrl-C) stay off the terminal; a failed
        # item still reaches the manifest with its error
        cluster = distributed.LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster if cluster is not None else scheduler)
    try:
        client.register_plugin(_plugin_class()(spec), name=PLUGIN)
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        limit = max_in_flight or 2 * n_workers
        token = uuid.uuid4().hex[:8]
        pending = iter(items)
        owner = {}

        def submit(item: WorkItem):
            fut = client.submit(_run_on_worker, item, settings, str(Path(out).resolve()), pure=False,
                                key=f"samprompt-{item.id}-{token}")
            owner[fut.key] = item
            return fut

        ac = distributed.as_completed([submit(i) for _, i in zip(range(limit), pending)])
        for fut in ac:
            item = owner.pop(fut.key)
            try:
                rec = fut.result()
            except Exception as exc:  # the item killed every worker it ran on
                rec = {"id": item.id, "status": "failed", "outputs": {}, "n_masks": 0, "seconds": 0.0,
                       "error": f"{type(exc).__name__}: {exc}", "model_id": None, "learned_id": None,
                       "encoder": None}
            yield rec
            nxt = next(pending, None)
            if nxt is not None:
                ac.add(submit(nxt))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
