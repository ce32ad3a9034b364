"""Medical volumes (extra ``medical``: MONAI, nibabel, pydicom): NIfTI files and DICOM series in, 3D label
volumes on the source's grid out, from a key-slice box, a 3D box, clicks or a coarse mask per object.

    vol = load_volume("ct.nii.gz")                       # MONAI LoadImage + Orientation(RAS)
    window, why = choose_window(vol.data, "auto", vol.modality)
    res = segment_volume(seg, vol, objects, window)      # propagation, one encoder pass per slice
    save_segmentation("ct_seg.nii.gz", res.labels, vol)  # the input's grid, affine and codes
"""

from .evaluate import MODES, evaluate_volumes, simulate_objects
from .intensity import CT_WINDOWS, choose_window, parse_window
from .job import VolumeJob, find_volumes, volume_items
from .metrics import dice_3d, surface_dice
from .prompts import VolumeObject, parse_objects, read_volume_prompts
from .propagate import PropagationSettings, VolumeSegmentation, oracle_segmentation, segment_volume
from .volume import MedicalVolume, load_volume, save_segmentation

__all__ = [
    "CT_WINDOWS", "MODES", "MedicalVolume", "PropagationSettings", "VolumeJob", "VolumeObject",
    "VolumeSegmentation", "choose_window", "dice_3d", "evaluate_volumes", "find_volumes", "load_volume",
    "oracle_segmentation", "parse_objects", "parse_window", "read_volume_prompts", "save_segmentation",
    "segment_volume", "simulate_objects", "surface_dice", "volume_items",
]
