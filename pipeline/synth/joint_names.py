"""Joint names and joint groups of the SMPL-H skeleton the motion generator poses and the
motion statistics pool over (pure data, as smplx keeps ``joint_names.py``)."""

from __future__ import annotations

from smplx.joint_names import SMPLH_JOINT_NAMES

#: SMPL-H joint names in pose order (22 body joints, 15 left-hand, 15 right-hand joints).
JOINT_NAMES: tuple[str, ...] = tuple(SMPLH_JOINT_NAMES[:52])
#: Pose index of each joint name.
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}
#: Finger names of the hand joints (``left_index1`` ... ``right_thumb3``).
FINGERS = ("index", "middle", "pinky", "ring", "thumb")
#: Pose indices of the left joints and of their right counterparts, in the same order.
LEFT: list[int] = [j for j, name in enumerate(JOINT_NAMES) if name.startswith("left_")]
RIGHT: list[int] = [JOINT_INDEX["right_" + JOINT_NAMES[j][5:]] for j in LEFT]

#: Joint groups by SMPL-H joint name (body joints 1..21); left/right pairs list left first.
#: The generator's mocap texture (:data:`pipeline.synth.style.TEXTURE`) and the motion
#: statistics (:mod:`pipeline.synth.stats`) share them.
GROUPS: dict[str, tuple[str, ...]] = {
    "hips": ("left_hip", "right_hip"),
    "knees": ("left_knee", "right_knee"),
    "ankles": ("left_ankle", "right_ankle"),
    "feet": ("left_foot", "right_foot"),
    "spine": ("spine1", "spine2", "spine3"),
    "neck": ("neck",),
    "head": ("head",),
    "collars": ("left_collar", "right_collar"),
    "shoulders": ("left_shoulder", "right_shoulder"),
    "elbows": ("left_elbow", "right_elbow"),
    "wrists": ("left_wrist", "right_wrist"),
}


def pair(name: str) -> list[int]:
    """Joint indices of ``left_<name>`` and ``right_<name>``."""
    return [JOINT_INDEX[f"left_{name}"], JOINT_INDEX[f"right_{name}"]]
