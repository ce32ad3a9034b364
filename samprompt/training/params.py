"""Choosing which weights train: freeze the rest."""

from __future__ import annotations

import torch


def trainable(model: torch.nn.Module, only: str | None = None) -> list[torch.nn.Parameter]:
    """Mark the parameters to train and return them; every other parameter is frozen.

    ``only``: name prefixes separated by ``,`` or ``+`` (e.g. ``"mask_decoder.iou_prediction_head"``);
    ``None`` trains every parameter. A prefix list that matches nothing is a ``ValueError``.
    """
    prefixes = tuple(x.strip() for x in (only or "").replace("+", ",").split(",") if x.strip())
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(only is None or name.startswith(prefixes))
        if p.requires_grad:
            params.append(p)
    if not params:
        raise ValueError(f"no parameter name starts with {only!r}")
    return params
