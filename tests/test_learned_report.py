"""The learned-prompt benchmark's table, verdicts and picture (samprompt.learned.report; rows, no training)."""

import json

import numpy as np
import pytest
from PIL import Image

from samprompt.errors import ConfigError
from samprompt.learned import report as bench


def _row(task, method, miou, pct):
    return {"task": task, "method": method, "mIoU": miou, "params": int(pct * 1000), "params_pct": pct,
            "seconds": 1.0, "bytes": 2048, "model": "tiny:test"}


def test_report_merges_tasks_and_judges_the_bar(tmp_path):
    (tmp_path / "results_ultrasound.json").write_text(json.dumps(
        [_row("ultrasound", "frozen", 0.30, 0), _row("ultrasound", "vpt-deep", 0.50, 1.0),
         _row("ultrasound", "full-ft", 0.60, 100)]))
    (tmp_path / "results_rooftops.json").write_text(json.dumps(
        [_row("rooftops", "frozen", 0.60, 0), _row("rooftops", "vpt-deep", 0.61, 1.0),
         _row("rooftops", "full-ft", 0.66, 100)]))
    text = bench.report(tmp_path)
    assert "ultrasound: vpt-deep gains +0.200, full fine-tuning +0.300 (meets" in text
    assert "rooftops: vpt-deep gains +0.010, full fine-tuning +0.060 (misses" in text
    assert len(json.loads((tmp_path / "results.json").read_text())) == 6
    assert "by_size" not in text and "px |" not in text  # rows without sizes: no size table
    with Image.open(tmp_path / "results.png") as im:
        assert im.width > 1.5 * im.height  # two task panels side by side


def test_size_table_lists_bins_with_counts():
    row = _row("rooftops", "vpt-deep", 0.61, 1.0)
    row["by_size"] = {"<64": {"n": 3, "mIoU": 0.5}, ">=64": {"n": 0, "mIoU": None}}
    lines = bench.size_table([row, _row("rooftops", "pixel-pad", 0.6, 1.0)])
    assert lines[1] == "| task | method | <64 px | >=64 px |"
    assert lines[-1] == "| rooftops | vpt-deep | 0.500 (3) | - |" and len(lines) == 4


def test_report_with_seeds_and_a_variant(tmp_path):
    rows = [_row("rooftops", "full-ft", 0.66, 100), _row("rooftops", "vpt-deep:kv=direct,tokens=16", 0.635, 1.0),
            _row("rooftops", "vpt-deep", 0.61, 1.0), _row("rooftops", "frozen", 0.60, 0)]
    for r, runs in zip(rows, ([0.65, 0.67], [0.63, 0.64], [0.60, 0.62], [0.60])):
        r.update(mIoU_runs=runs, mIoU_std=float(np.std(runs)), val_mIoU=0.5)
    (tmp_path / "results_rooftops.json").write_text(json.dumps(rows))
    text = bench.report(tmp_path)
    table = [line.split(" | ")[1] for line in text.splitlines() if line.startswith("| rooftops")]
    assert table == ["frozen", "vpt-deep", "vpt-deep:kv=direct,tokens=16", "full-ft"]  # variants after their base
    assert "| 0.660 ± 0.010 | 0.500 |" in text and "mean ± std over 2 training seeds" in text
    assert "rooftops: vpt-deep gains +0.010, full fine-tuning +0.060 (misses" in text
    assert "rooftops: vpt-deep:kv=direct,tokens=16 gains +0.035, full fine-tuning +0.060 (meets" in text


def test_parse_method():
    assert bench.parse_method("vpt-deep:kv=direct,tokens=16,lr=0.1") == (
        "vpt-deep", {"kv": "direct", "tokens": 16, "lr": 0.1})
    assert bench.parse_method("full-ft") == ("full-ft", {})
    with pytest.raises(ConfigError, match="unknown method"):
        bench.parse_method("vpt-wide")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        bench.parse_method("vpt-deep:direct")


def test_compare_judges_each_method_at_its_best_validation_run(tmp_path):
    short, long = tmp_path / "short", tmp_path / "long"
    for out, vpt, full, epochs in ((short, (0.62, 0.61), (0.64, 0.63), 20), (long, (0.625, 0.60), (0.68, 0.66), 60)):
        rows = [_row("rooftops", "frozen", 0.60, 0), _row("rooftops", "vpt-deep", vpt[0], 1.0),
                _row("rooftops", "full-ft", full[0], 100)]
        for r, val in zip(rows, (0.58, vpt[1], full[1])):
            r.update(val_mIoU=val, epochs=epochs)
        out.mkdir()
        (out / "results_rooftops.json").write_text(json.dumps(rows))
        bench.report(out)  # builds results.json
    text = bench.compare([short, long])
    assert "| rooftops | vpt-deep | 0.620 / 0.610 | 0.625 / 0.600 | 20 epochs |" in text  # val prefers 20 epochs
    assert "| rooftops | full-ft | 0.640 / 0.630 | 0.680 / 0.660 | 60 epochs |" in text
    # each at its own pick: +0.020 against +0.080 misses, though 20 epochs alone (+0.020 of +0.040) would meet
    assert "rooftops: vpt-deep gains +0.020, full fine-tuning +0.080 (misses" in text
    assert "meets" in (short / "results.md").read_text()
