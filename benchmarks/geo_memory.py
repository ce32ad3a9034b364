"""Peak memory and time of ``samprompt geo`` on generated rasters of growing size, against reading them whole.

    python benchmarks/geo_memory.py [--auto 2048,4096,8192] [--prompted 2048,4096,8192,16384] [--prompts 40]
                                    [--points-per-side 8] [--threads 2] [--data DIR] [--out docs/data/geo_memory.json]

Each raster is ``samprompt synth --raster`` (3-band uint8, 512-px tiles, DEFLATE,
overviews) of the given side. Every measurement runs in a fresh process and
reports that process's peak RSS (VmHWM, so the model, GDAL's cache and
Python are all in it) and its wall time:

* ``auto``: ``samprompt geo RASTER --auto`` (256-px tiles, 64-px overlap);
* ``prompted``: ``samprompt geo RASTER --prompts P`` with the same number of
  prompts at every size (truth footprints spread over the raster);
* ``reference``: what samgeo's vectorising step does, on the same raster: read
  the whole image and the whole label raster into memory and run
  ``rasterio.features.shapes`` over the full label array.

Targets (issue 16): peak memory flat across sizes (within 1.2x), time linear in
area (automatic) or in the number of objects (prompted).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mib() -> float:
    """This process's peak RSS: VmHWM (ru_maxrss would carry the parent's peak across fork + exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_reference(raster: str, truth: str) -> dict:
    import rasterio
    from rasterio.features import shapes

    t0 = time.perf_counter()
    with rasterio.open(raster) as src:
        image = src.read()
    with rasterio.open(truth) as src:
        labels, transform = src.read(1), src.transform
    n = sum(1 for _ in shapes(labels, mask=labels > 0, transform=transform))
    return {"seconds": time.perf_counter() - t0, "peak_mib": _peak_mib(), "polygons": n,
            "array_mib": round((image.nbytes + labels.nbytes) / 2**20, 1)}


def child_geo(*args: str) -> dict:
    from samprompt import cli

    t0 = time.perf_counter()
    rc = cli.main(list(args))
    return {"seconds": time.perf_counter() - t0, "peak_mib": _peak_mib(), "exit": rc}


def measure(kind: str, *params: str) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import geo_memory as g; "
            f"print('RESULT', json.dumps(g.child_{kind}(*json.loads(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(list(params))], capture_output=True, text=True)
    line = [s for s in out.stdout.splitlines() if s.startswith("RESULT ")]
    if not line:
        raise RuntimeError(f"{kind} {params} failed:\n{out.stderr[-2000:]}")
    return json.loads(line[-1][7:])


def _item_seconds(out: Path) -> float:
    """Seconds spent in the windows themselves (the manifest's per-item times), without start-up and assembly."""
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return round(sum(json.loads(line)["seconds"] for line in lines), 2)


def prompts_file(data: Path, n: int) -> Path:
    """``n`` truth footprints spread evenly over the list of objects (so over the raster)."""
    doc = json.loads((data / "prompts.geojson").read_text())
    feats = doc["features"]
    step = max(1, len(feats) // n)
    doc["features"] = feats[::step][:n]
    path = data / f"prompts_{n}.geojson"
    path.write_text(json.dumps(doc))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--auto", default="2048,4096,8192")
    ap.add_argument("--prompted", default="2048,4096,8192,16384")
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--points-per-side", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=None, help="keep the generated rasters here (default: a temporary folder)")
    ap.add_argument("--out", default="docs/data/geo_memory.json")
    a = ap.parse_args()
    from samprompt import __version__
    from samprompt.synthetic.rasters import write_raster_dataset

    auto = [int(s) for s in a.auto.split(",") if s]
    prompted = [int(s) for s in a.prompted.split(",") if s]
    root = Path(a.data or tempfile.mkdtemp(prefix="geo_memory_"))
    rows = []
    for size in sorted(set(auto + prompted)):
        data = root / f"r{size}"
        if not (data / "scene.tif").exists():
            t0 = time.perf_counter()
            write_raster_dataset(data, size, seed=11)
            print(f"generated {size} px in {time.perf_counter() - t0:.1f} s", flush=True)
        common = ["--quiet", "--threads", str(a.threads)]
        ref = measure("reference", str(data / "scene.tif"), str(data / "scene_truth.tif"))
        rows.append({"mode": "reference", "size": size, **ref})
        print(rows[-1], flush=True)
        if size in prompted:
            p = prompts_file(data, a.prompts)
            r = measure("geo", "geo", str(data / "scene.tif"), "--prompts", str(p), "--out", str(root / f"p{size}"),
                        "--overwrite", *common)
            rows.append({"mode": "prompted", "size": size, "prompts": a.prompts, **r,
                         "windows_seconds": _item_seconds(root / f"p{size}")})
            print(rows[-1], flush=True)
        if size in auto:
            r = measure("geo", "geo", str(data / "scene.tif"), "--auto", "--points-per-side", str(a.points_per_side),
                        "--out", str(root / f"a{size}"), "--overwrite", *common)
            tiles = len((root / f"a{size}" / "manifest.jsonl").read_text().splitlines())
            rows.append({"mode": "auto", "size": size, "tiles": tiles, **r,
                         "windows_seconds": _item_seconds(root / f"a{size}")})
            print(rows[-1], flush=True)
    doc = {"version": __version__, "machine": platform.processor() or platform.machine(), "threads": a.threads,
           "points_per_side": a.points_per_side, "rows": rows}
    for mode in ("auto", "prompted", "reference"):
        sel = [r for r in rows if r["mode"] == mode]
        if len(sel) > 1:
            doc[f"{mode}_peak_ratio"] = round(max(r["peak_mib"] for r in sel) / min(r["peak_mib"] for r in sel), 3)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "rows"}))


if __name__ == "__main__":
    main()
