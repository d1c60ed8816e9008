"""COCO-17 Gaussian heatmaps for the build: the shards' codec, re-exported unchanged.

The codec lives in :mod:`shards.heatmaps` (the dataset format owns how its heatmaps are
drawn); this module keeps ``pipeline.heatmaps`` working for the build, benchmarks and tests.
"""

from shards.heatmaps import (
    CUTOFF,
    HAVE_NUMBA,
    OUTSIDE_SIGMAS,
    dataset_codec,
    decode,
    default_sigma,
    drawable,
    encode,
    window_radius,
)

__all__ = [
    "CUTOFF",
    "HAVE_NUMBA",
    "OUTSIDE_SIGMAS",
    "dataset_codec",
    "decode",
    "default_sigma",
    "drawable",
    "encode",
    "window_radius",
]
