"""Plot the built-in model's validation curve from its training logs: ``python docs/make_training_plot.py``."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
STAGES = [
    ("stage 1 (from scratch)", "tiny_training_log.jsonl", 0),
    ("stage 2 (warm restart)", "tiny_training_log_stage2.jsonl", 4500),
    ("stage 3 (warm restart)", "tiny_training_log_stage3.jsonl", 9520),
    ("stage 4 (warm restart)", "tiny_training_log_stage4.jsonl", 12167),
    ("stage 5 (warm restart)", "tiny_training_log_stage5.jsonl", 17202),
]

fig, ax = plt.subplots(figsize=(6, 3.4), dpi=100)
for (name, file, offset), colour in zip(STAGES, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")):
    if not (HERE / file).exists():
        continue
    recs = [json.loads(line) for line in (HERE / file).read_text().splitlines() if line.strip()]
    val = {r["step"]: r for r in recs if "val_box" in r}  # a resumed run repeats steps: keep the last
    steps = sorted(val)
    ax.plot([s + offset for s in steps], [val[s]["val_box"] for s in steps], "o-", color=colour, ms=3, label=f"{name}: box")
    ax.plot([s + offset for s in steps], [val[s]["val_point"] for s in steps], "s--", color=colour, ms=3, label=f"{name}: point")
ax.axhline(0.85, color="grey", lw=0.8, ls=":")
ax.axhline(0.75, color="grey", lw=0.8, ls=":")
ax.set_xlabel("training step (batch 4)")
ax.set_ylabel("validation mIoU (48 scenes)")
ax.set_title("built-in tiny SAM, 2 CPU cores (dotted: box and point bars)")
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
fig.savefig(HERE / "tiny_training.png")
print("wrote", HERE / "tiny_training.png")
