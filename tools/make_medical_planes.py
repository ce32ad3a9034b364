"""Draw key-slice propagation on a held-out generated CT: ``python tools/make_medical_planes.py``.

Top row: the truth; bottom row: the masks from one box per structure on its largest axial
slice, propagated. Columns: axial, coronal and sagittal planes through the liver, shown as a
radiologist views them (anterior or superior up, the patient's right on the left), with
square millimetres. Writes ``docs/medical_planes.png``.
"""

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from samprompt import Segmenter
from samprompt.domains.medical import choose_window, dice_3d, load_volume, segment_volume
from samprompt.domains.medical.evaluate import simulate_objects
from samprompt.synthetic.volumes import LABELS, make_volume, save_nifti

DOCS = Path(__file__).parents[1] / "docs"
SEED = 304


def main() -> Path:
    import tempfile

    truth = make_volume(SEED, orientation="RAS")
    path = save_nifti(Path(tempfile.mkdtemp()) / "ct.nii.gz", truth.data, truth.affine)
    vol = load_volume(path)
    window, _ = choose_window(vol.data)
    res = segment_volume(Segmenter(), vol, simulate_objects(truth.labels)["key_box"], window)
    img = window(vol.data)
    centre = [int(np.mean(np.nonzero(truth.labels == 1)[a])) for a in range(3)]
    fig, axes = plt.subplots(2, 3, figsize=(11, 6.4))
    for row, (labels, name) in enumerate(((truth.labels, "truth"), (res.labels, "key-slice boxes, propagated"))):
        for col, (axis, plane) in enumerate(((2, "axial"), (1, "coronal"), (0, "sagittal"))):
            flip = (slice(None, None, -1), slice(None, None, -1) if axis != 0 else slice(None))
            sl = np.take(img, centre[axis], axis=axis).T[flip]
            lab = np.take(labels, centre[axis], axis=axis).T[flip]
            sp = [s for a, s in enumerate(vol.spacing) if a != axis]
            ax = axes[row, col]
            ax.imshow(sl, cmap="gray", aspect=sp[1] / sp[0])
            ax.imshow(np.ma.masked_equal(lab, 0), cmap="tab10", vmin=0, vmax=9, alpha=0.45, aspect=sp[1] / sp[0],
                      interpolation="nearest")
            ax.set_title(f"{name}: {plane}", fontsize=9)
            ax.axis("off")
    scores = ", ".join(f"{LABELS[k]} {dice_3d(res.labels == k, truth.labels == k):.2f}" for k in LABELS)
    fig.suptitle(f"generated CT (seed {SEED}), built-in tiny model; 3D Dice: {scores}", fontsize=9)
    fig.tight_layout()
    out = DOCS / "medical_planes.png"
    fig.savefig(out, dpi=90)
    return out


if __name__ == "__main__":
    print(main())
