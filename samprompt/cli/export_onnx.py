"""``samprompt export-onnx``: the encoder and the prompt decoder as ONNX files (extra ``onnx``)."""

from __future__ import annotations

HELP = "export a model's encoder and prompt decoder to ONNX"
DESCRIPTION = """Write OUT/encoder.onnx, OUT/decoder.onnx (any number of points, a box, a mask input) and
OUT/onnx.json (model id, inputs and outputs). Run them with --onnx-dir OUT in segment and eval,
or Segmenter(model, backend="onnx", onnx_dir=OUT) in Python."""


def add_parser(sub, formatter) -> None:
    e = sub.add_parser("export-onnx", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    e.add_argument("model", help="registry name (tiny, vit_b, ...) or checkpoint path")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--overwrite", action="store_true", help="replace files in --out that samprompt did not write")
    e.set_defaults(func=run)


def run(args) -> int:
    import time

    from ..models import load_model
    from ..onnx_backend import DECODER_FILE, ENCODER_FILE, INFO_FILE, export_onnx
    from ..outputs import check_out_folder, check_outputs

    out = check_out_folder(args.out)
    from ..models import REGISTRY

    check_outputs([out / f for f in (ENCODER_FILE, DECODER_FILE, INFO_FILE)],
                  inputs=[] if args.model in REGISTRY else [args.model], overwrite=args.overwrite)
    t = time.perf_counter()
    out = export_onnx(load_model(args.model), args.out)
    print(f"wrote {out}/encoder.onnx, decoder.onnx and onnx.json in {time.perf_counter() - t:.1f} s")
    return 0
