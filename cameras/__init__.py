"""Camera geometry for MPT pre-training: the Human3.6M S1 rig, interpolated views, placement of
bodies in the capture volume, projection with the Human3.6M lens distortion, and crops.

Depends on numpy and scipy only (matplotlib is imported lazily by :mod:`cameras.plot`).
"""

from .camera import Camera
from .crop import (
    CROP_RES,
    HEATMAP_RES,
    apply_affine,
    compose_affine,
    crop_affine,
    crop_box,
    crop_intrinsics,
    invert_affine,
    normalized_affine,
    resize_affine,
)
from .data import load_h36m_s1
from .placement import apply_transform, invert_transform, placement_transform, yaw_matrix
from .projection import Projection, distort_normalized, project, world_to_camera
from .rig import Rig, h36m_volume_centre, interpolate, make_rig, volume_centre

__all__ = [
    "CROP_RES",
    "HEATMAP_RES",
    "Camera",
    "Projection",
    "Rig",
    "apply_affine",
    "apply_transform",
    "compose_affine",
    "crop_affine",
    "crop_box",
    "crop_intrinsics",
    "distort_normalized",
    "h36m_volume_centre",
    "interpolate",
    "invert_affine",
    "invert_transform",
    "load_h36m_s1",
    "make_rig",
    "normalized_affine",
    "placement_transform",
    "project",
    "resize_affine",
    "volume_centre",
    "world_to_camera",
    "yaw_matrix",
]
