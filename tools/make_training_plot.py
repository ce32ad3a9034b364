"""Plot the built-in model's validation curve from its training logs: ``python tools/make_training_plot.py``.

Stage 1 is ``tiny_training_log.jsonl``; stage N > 1 is ``tiny_training_log_stageN.jsonl``, a warm
restart from stage N-1's final weights, drawn after the last step of the stage before it.
"""

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

DOCS = Path(__file__).parents[1] / "docs"


def stage_logs() -> list[Path]:
    later = sorted((DOCS / "data").glob("tiny_training_log_stage*.jsonl"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    return [DOCS / "data" / "tiny_training_log.jsonl", *later]


fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
offset = 0
logs = stage_logs()
colours = plt.get_cmap("viridis")([i / max(1, len(logs) - 1) * 0.9 for i in range(len(logs))])
for n, (file, colour) in enumerate(zip(logs, colours), start=1):
    recs = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    val = {r["step"]: r for r in recs if "val_box" in r}  # a resumed run repeats steps: keep the last
    steps = sorted(val)
    x = [s + offset for s in steps]
    ax.plot(x, [val[s]["val_box"] for s in steps], "o-", color=colour, ms=3)
    ax.plot(x, [val[s]["val_point"] for s in steps], "s--", color=colour, ms=3)
    ax.annotate(str(n), (x[-1], val[steps[-1]]["val_box"]), textcoords="offset points", xytext=(-3, 5), fontsize=7)
    offset += max(r["step"] for r in recs)
ax.axhline(0.85, color="grey", lw=0.8, ls=":")
ax.axhline(0.75, color="grey", lw=0.8, ls=":")
ax.set_xlabel("training step (batch 4); numbers: end of each stage")
ax.set_ylabel("validation mIoU (48 scenes)")
ax.set_title("built-in tiny SAM, 2 CPU cores (dotted: box and point bars)", fontsize=10)
ax.legend(handles=[Line2D([], [], color="k", marker="o", ms=3, label="one box"),
                   Line2D([], [], color="k", marker="s", ms=3, ls="--", label="one point")],
          fontsize=8, loc="lower right")
fig.tight_layout()
fig.savefig(DOCS / "tiny_training.png")
print("wrote", DOCS / "tiny_training.png", f"({len(logs)} stages, {offset:,} steps)")
