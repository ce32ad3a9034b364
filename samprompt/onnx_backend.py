"""SAM's encoder and prompt decoder as ONNX files, run with onnxruntime (extra ``onnx``).

:func:`export_onnx` writes ``encoder.onnx`` (preprocessed (1, 3, S, S) image ->
(1, C, h, w) embedding), ``decoder.onnx`` (embedding + any number of points,
a box as two corner points, an optional mask input -> the four low-res mask
logits and IoU predictions of every object) and ``onnx.json`` (the model id,
sizes, and each file's inputs and outputs). ``Segmenter(model, backend="onnx",
onnx_dir=DIR)`` runs them in place of the torch encoder and decoder; resizing,
padding and upscaling stay the Segmenter's, so the masks come out the same way.

Prompts in the decoder follow ``segment_anything``'s ONNX convention: point
labels 1/0 (object/background), 2/3 for a box's top-left/bottom-right corner,
-1 for the padding point that stands in for a missing box.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import Sam
from torch import nn

from .encoders import Encoder
from .errors import CheckpointError, ConfigError, require
from .models import model_id

ENCODER_FILE, DECODER_FILE, INFO_FILE = "encoder.onnx", "decoder.onnx", "onnx.json"
OPSET = 17


class _Decoder(nn.Module):
    """The prompt encoder + mask decoder with ONNX-friendly inputs (no None, no Python branching)."""

    def __init__(self, model: Sam) -> None:
        super().__init__()
        from segment_anything.utils.onnx import SamOnnxModel

        self.sam = SamOnnxModel(model, return_single_mask=False)

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        sparse = self.sam._embed_points(point_coords, point_labels)
        dense = self.sam._embed_masks(mask_input, has_mask_input)
        pe = self.sam.model.prompt_encoder.get_dense_pe()
        return self.sam.model.mask_decoder.predict_masks(image_embeddings, pe, sparse, dense)


def _export(module: nn.Module, args: tuple, path: Path, names_in: list[str], names_out: list[str], dynamic: dict):
    import warnings

    with warnings.catch_warnings():  # the tracer's notes on segment_anything's shape arithmetic
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=names_in, output_names=names_out,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    from .outputs import record_written

    record_written(path)


def export_onnx(model: Sam, out: str | Path) -> Path:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``onnx.json`` for ``model`` into ``out``."""
    require("onnx", "onnx")
    from .families import family_of

    family = family_of(model).name
    if family not in ("sam", "medsam"):
        raise ConfigError(f"export-onnx writes SAM's ViT and decoder; a {family} model has another graph "
                          "(SAM 2 and SAM-HQ publish their own exporters): run it with backend='torch'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    s = model.image_encoder.img_size
    emb_c = model.prompt_encoder.embed_dim
    h, w = model.prompt_encoder.image_embedding_size
    lh, lw = model.prompt_encoder.mask_input_size
    with torch.no_grad():
        _export(model.image_encoder, (torch.randn(1, 3, s, s),), out / ENCODER_FILE, ["image"], ["embedding"], {})
        args = (torch.randn(1, emb_c, h, w), torch.rand(2, 3, 2) * s, torch.tensor([[1, 0, -1]] * 2).float(),
                torch.zeros(2, 1, lh, lw), torch.zeros(1))
        _export(_Decoder(model), args, out / DECODER_FILE,
                ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"],
                ["low_res_logits", "iou_predictions"],
                {"point_coords": {0: "objects", 1: "points"}, "point_labels": {0: "objects", 1: "points"},
                 "mask_input": {0: "objects"}, "low_res_logits": {0: "objects"}, "iou_predictions": {0: "objects"}})
    info = {
        "model_id": model_id(model), "img_size": s, "opset": OPSET,
        "encoder": {"inputs": {"image": [1, 3, s, s]}, "outputs": {"embedding": [1, emb_c, h, w]},
                    "note": "image: resized, normalised and zero-padded as Sam.preprocess does"},
        "decoder": {"inputs": {"image_embeddings": [1, emb_c, h, w], "point_coords": ["B", "N", 2],
                               "point_labels": ["B", "N"], "mask_input": ["B", 1, lh, lw], "has_mask_input": [1]},
                    "outputs": {"low_res_logits": ["B", 4, lh, lw], "iou_predictions": ["B", 4]},
                    "note": "coordinates in the encoder's input frame; labels 1/0 points, 2/3 box corners, "
                            "-1 padding; output 0 is the single-mask answer, 1-3 the multimask ones"},
    }
    from .io import atomic_write_text

    atomic_write_text(out / INFO_FILE, json.dumps(info, indent=1) + "\n")
    return out


class _Sessions:
    """The onnxruntime sessions of an export folder, checked against the model they are used with."""

    def __init__(self, onnx_dir: str | Path, model: Sam | None = None) -> None:
        ort = require("onnxruntime", "onnx")
        d = Path(onnx_dir)
        try:
            self.info = json.loads((d / INFO_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{d} holds no ONNX export of samprompt ({INFO_FILE}: {exc})") from exc
        if model is not None and self.info["model_id"] != model_id(model):
            raise CheckpointError(f"the ONNX files in {d} were exported from {self.info['model_id']}, "
                                  f"not {model_id(model)}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        self.encoder = ort.InferenceSession(str(d / ENCODER_FILE), opts, providers=["CPUExecutionProvider"])
        self.decoder = ort.InferenceSession(str(d / DECODER_FILE), opts, providers=["CPUExecutionProvider"])


class OnnxEncoder(Encoder):
    """The exported image encoder, run by onnxruntime (fp32)."""

    kind = "onnx"
    precision = "fp32"
    supports_learned = False

    def __init__(self, onnx_dir: str | Path) -> None:
        self.onnx_dir = Path(onnx_dir)
        self._sessions: _Sessions | None = None

    def bind(self, model: Sam) -> None:
        self.sessions(model)

    def sessions(self, model: Sam) -> _Sessions:
        if self._sessions is None:
            self._sessions = _Sessions(self.onnx_dir, model)
        return self._sessions

    def encode(self, model: Sam, x: torch.Tensor, learned=None, forward=None) -> torch.Tensor:
        if forward is not None:
            raise ConfigError("the ONNX backend runs SAM's ViT only; this model family has no exported encoder")
        if learned is not None:
            raise ConfigError("learned prompts act inside the torch encoder; with backend='onnx' they cannot run "
                              "(use backend='torch', with attn_impl='sdpa' for speed)")
        (emb,) = self.sessions(model).encoder.run(None, {"image": x.detach().cpu().numpy().astype(np.float32)})
        return torch.from_numpy(emb).to(x.device)

    def decode(self, model: Sam, embedding: torch.Tensor, points, boxes, masks) -> tuple[torch.Tensor, torch.Tensor]:
        """All four mask outputs and IoUs (as ``run_decoder(..., multimask=None)``) through ``decoder.onnx``."""
        b = (points[0] if points is not None else boxes).shape[0]
        coords = [points[0].cpu().numpy()] if points is not None else []
        labels = [points[1].cpu().numpy().astype(np.float32)] if points is not None else []
        if boxes is not None:
            coords.append(boxes.cpu().numpy().reshape(b, 2, 2))
            labels.append(np.tile(np.array([[2, 3]], np.float32), (b, 1)))
        else:
            coords.append(np.zeros((b, 1, 2), np.float32))
            labels.append(-np.ones((b, 1), np.float32))
        lh, lw = model.prompt_encoder.mask_input_size
        feeds = {
            "image_embeddings": embedding.detach().cpu().numpy().astype(np.float32),
            "point_coords": np.concatenate(coords, 1).astype(np.float32),
            "point_labels": np.concatenate(labels, 1).astype(np.float32),
            "mask_input": (masks.cpu().numpy() if masks is not None else np.zeros((b, 1, lh, lw))).astype(np.float32),
            "has_mask_input": np.array([1.0 if masks is not None else 0.0], np.float32),
        }
        low, iou = self.sessions(model).decoder.run(None, feeds)
        return torch.from_numpy(low).to(embedding.device), torch.from_numpy(iou).to(embedding.device)
