"""``samprompt medical``: 3D segmentation of CT/MR volumes from a few prompts per object, on the jobs engine."""

from __future__ import annotations

import sys

from .common import add_encoder_options, add_job_options, add_model_options, run_cli_job, summary_line

HELP = "segment NIfTI volumes or DICOM series from a box, clicks or a 3D box per object"
DESCRIPTION = """Segment each object of each volume of INPUT (a .nii/.nii.gz file; DICOM as exported: a file,
a series folder, a study tree of any depth, a folder with a DICOMDIR, or a zip; a folder of
NIfTI files; or a MONAI/MSD datalist JSON) from its prompt in --prompts, propagating from a
key slice up and down. Every DICOM series is found and checked: non-image objects are
skipped, localizers split off, and a series with a gap, uneven spacing or a tilt is refused
with the reason (--allow-gaps keeps a gap on the true grid). --list prints what was found. Writes OUT/NAME_seg.nii.gz (uint8, each object's label) on
the input's own grid and affine, and a manifest.jsonl; rerunning resumes. A volume that
fails is recorded in OUT/failures.json and the rest go on.

--prompts (JSON): {"objects": [...]} for every volume, or {"NAME": {"objects": [...]}}
per volume (NAME: the file name without .nii/.nii.gz; a DICOM series' folder name when the
folder holds that series alone, else patient_study_series from its tags: see --list).
Each object: "label" (its output value) and one of
  "box": [x0, y0, x1, y1] + "slice": k   key-slice box (first/last voxel, inclusive)
  "box3d": [x0, y0, z0, x1, y1, z1]      3D box
  "points": [[x, y, z], ...] + "labels"  clicks (1 object, 0 background)
  "mask": "coarse.nii.gz"                coarse mask on the same grid
Coordinates are voxel indices in the file's array order (nibabel's for NIfTI); add
"space": "world" for RAS millimetres (points, box3d). Full schema: docs/medical.md.

Exit status: 0 every volume done; 1 some failed or had no prompts; 2 bad usage; 130 Ctrl-C."""


def add_parser(sub, formatter) -> None:
    from ..domains.medical.intensity import WINDOW_HELP

    m = sub.add_parser("medical", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    m.add_argument("input", help="volume, DICOM series folder, folder of volumes, or datalist JSON")
    m.add_argument("--prompts", metavar="JSON", help="objects per volume (see above); required unless --list")
    m.add_argument("--labels", metavar="JSON", default=None,
                   help='label names (and colours) for every output: {"1": "liver", "2": {"name": "spleen", '
                        '"color": [0, 200, 0]}}')
    m.add_argument("--list", action="store_true", help="list the volumes and DICOM series found (and what was "
                                                       "skipped or would be refused), then exit")
    m.add_argument("--allow-gaps", action="store_true",
                   help="keep a DICOM series with missing slices on its true grid (the missing slices empty; "
                        "prompts on them refused) instead of refusing it")
    m.add_argument("--out", default="samprompt_medical", help="output folder")
    m.add_argument("--window", default="auto", metavar="WINDOW", help=WINDOW_HELP)
    m.add_argument("--format", action="append", choices=["nifti", "dicom-seg", "rtstruct"], default=None,
                   help="nifti: OUT/NAME_seg.nii.gz on the input's grid; dicom-seg: OUT/NAME/seg.dcm, a DICOM "
                        "Segmentation of a DICOM input's series (PACS viewers); rtstruct: OUT/NAME/rtstruct.dcm, "
                        "contours per slice (planning systems); repeat for several (default: nifti)")
    p = m.add_argument_group("propagation")
    p.add_argument("--fuse", action="store_true", help="add coronal and sagittal passes and keep voxels 2 of 3 "
                                                       "passes agree on (about 3x slower)")
    p.add_argument("--min-agree", type=float, default=0.5,
                   help="stop an object when less than this fraction of its mask lies in its key-slice "
                        "intensity band")
    p.add_argument("--stop-iou", type=float, default=0.5, help="stop an object when its predicted IoU drops below")
    p.add_argument("--propagate", choices=["auto", "box", "memory"], default="auto",
                   help="box: each next slice prompted with a box around the last mask (SAM models); memory: "
                        "SAM 2's video predictor and its memory (SAM 2 models); auto: memory for SAM 2 models, "
                        "else box")
    add_model_options(m)
    add_encoder_options(m)
    add_job_options(m, "volume")
    m.set_defaults(func=run)
    c = sub.add_parser("medical-convert", prog="samprompt medical convert", formatter_class=formatter,
                       description="Write each volume and DICOM series of INPUT as OUT/NAME.nii.gz, with its affine, "
                                   "the way samprompt reads it (check it in a viewer before segmenting). Series that "
                                   "cannot be read are named with the reason; exit status 1 if any.")
    c.add_argument("input", help="NIfTI, DICOM file, series folder, study tree, DICOMDIR folder or zip")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--allow-gaps", action="store_true", help="keep a series with missing slices (see medical)")
    c.add_argument("--overwrite", action="store_true", help="replace files in --out that samprompt did not write")
    c.set_defaults(func=run_convert)


def run(args) -> int:
    from ..domains.medical import PropagationSettings, VolumeJob, parse_window, volume_items
    from ..errors import ConfigError, require

    require("monai", "medical")
    parse_window(args.window)  # a bad window is usage, before any volume is read
    for name in ("min_agree", "stop_iou"):
        if not 0 <= getattr(args, name) <= 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1, got {getattr(args, name)}")
    if args.propagate == "memory":
        from ..models import checkpoint_family

        if checkpoint_family(args.model, args.family) != "sam2":
            raise ConfigError(f"--propagate memory needs a SAM 2 model (e.g. --model sam2.1_hiera_tiny); "
                              f"{args.model} is not one: use --propagate box")
    if args.list:
        return list_volumes(args.input, args.allow_gaps)
    if not args.prompts:
        raise ConfigError("--prompts is required (objects per volume); --list shows the volumes' names")
    items = volume_items(args.input, args.prompts)
    formats = args.format or ["nifti"]
    dicom_out = [f for f in formats if f != "nifti"]
    if dicom_out:
        if "dicom-seg" in formats:
            require("highdicom", "medical")
        nifti = [i.id for i in items if not i.meta.get("series")]
        if nifti:
            raise ConfigError(f"--format {dicom_out[0]} needs DICOM inputs; {nifti[0]} is NIfTI (use --format nifti)")
    from ..domains.medical.labels import read_labels

    labels = {str(k): v for k, v in read_labels(args.labels).items()} if args.labels else {}
    settings = VolumeJob(formats=formats, labels=labels, window=args.window, propagation=PropagationSettings(
        fuse=args.fuse, min_agree=args.min_agree, stop_iou=args.stop_iou, method=args.propagate),
        allow_gaps=args.allow_gaps)
    summary = run_cli_job(args, items, settings)
    for rec in summary.records:
        if rec["status"] == "failed":
            print(f"samprompt: {rec['id']}: {rec['error']}", file=sys.stderr)
        elif rec["status"] == "no_prompts":
            print(f"samprompt: {rec['id']}: no objects for it in {args.prompts}", file=sys.stderr)
        elif not args.quiet:
            objs = ", ".join(f"{o['label']}{'/' + o['name'] if o['name'] else ''}: {o['ml']} ml, slices "
                             f"{o['slices'][0]}-{o['slices'][1]}" if o["slices"] else f"{o['label']}: empty"
                             for o in rec.get("objects", []))
            gaps = f"; slices {rec['missing_slices']} missing, kept empty" if rec.get("missing_slices") else ""
            notes = f"; {'; '.join(n for n in rec.get('notes', []) if not n.startswith('gap kept'))}" \
                if rec.get("notes") else ""
            print(f"{rec['id']}: {rec.get('window')}; {objs}{gaps}{notes.rstrip('; ')}")
    if not args.quiet:
        print(summary_line(summary, len(items), "volume", args.out))
    if summary.interrupted:
        print("samprompt: interrupted; run the same command again to resume", file=sys.stderr)
    return summary.exit_code


def list_volumes(source, allow_gaps: bool) -> int:
    """``--list``: each volume or series found, with its size and whether it can be read (the geometry is
    checked, the pixels are not decoded), then what was skipped."""
    from ..domains.medical.dicom import geometry_problem
    from ..domains.medical.job import discover_volumes

    found, skipped = discover_volumes(source)
    for f in found:
        if f.series is None:
            print(f"{f.name}: NIfTI {f.path}")
            continue
        problem = geometry_problem(f.series, f.unreadable, allow_gaps)
        state = f"REFUSED: {problem}" if problem else "ok"
        print(f"{f.name}: {f.series.describe().split(': ', 1)[1]} in {f.path} -> {state}")
    for what, why in skipped:
        print(f"skipped {what}: {why}")
    return 0


def run_convert(args) -> int:
    """``samprompt medical convert``: every volume found, as NIfTI."""
    from pathlib import Path

    from ..domains.medical.job import discover_volumes
    from ..domains.medical.volume import load_volume, save_image
    from ..errors import SampromptError, require
    from ..outputs import check_out_folder, check_outputs

    require("monai", "medical")
    found, _ = discover_volumes(args.input)
    out = check_out_folder(args.out)
    check_outputs([out / f"{f.name}.nii.gz" for f in found], inputs=[f.path for f in found],
                  input_dirs=[args.input] if Path(args.input).is_dir() else [], overwrite=args.overwrite)
    code = 0
    for f in found:
        try:
            vol = load_volume(f.path, f.series, f.unreadable, args.allow_gaps)
            path = save_image(out / f"{f.name}.nii.gz", vol)
        except SampromptError as exc:
            text = str(exc)
            print(f"samprompt: {text if text.startswith(f.name + ':') else f'{f.name}: {text}'}", file=sys.stderr)
            code = 1
            continue
        extra = f"; {'; '.join(vol.notes)}" if vol.notes else ""
        print(f"{path}: {' x '.join(map(str, vol.file_shape))}, spacing "
              f"{' x '.join(f'{v:.3g}' for v in vol.spacing)} mm{extra}")
    return code
