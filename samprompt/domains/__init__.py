"""Domain adapters: each turns its data into images and its coordinates into pixel prompts, calls the
Segmenter, and writes results in the domain's own format (:mod:`.medical`: NIfTI and DICOM volumes)."""
