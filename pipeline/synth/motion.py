"""Generated AMASS-format motion archive (the embedded default for licensed AMASS data).

``generate_archive(out_dir)`` writes ``out_dir/<Subset>/<Subject>/<motion>_poses.npz`` files in
AMASS's SMPL+H G layout (``poses`` (N, 156) axis-angle in SMPL-H joint order, ``trans``,
``betas`` (16,), ``dmpls`` (N, 8), ``gender``, ``mocap_framerate``), one subject folder
``shape.npz`` as AMASS ships, and a few ``<motion>_stageii.npz`` files in AMASS's SMPL-X layout.

Motions are procedural: per-joint Euler angles (``R = Rx @ Rz @ Ry`` in the parent's rest frame,
SMPL rest frame y-up facing +z) built from smooth periodic curves and smoothstep keyframes,
kept inside ``JOINT_LIMITS``. The root orientation carries AMASS's y-up -> z-up turn (+90 deg
about x) and the heading. ``trans`` comes from a forward-kinematics pass over the body's rest
skeleton: its height puts the lowest foot joint at ``FOOT_CLEARANCE`` above z = 0 (jumps add a
smooth lift on top), and horizontally the body moves so the supporting foot does not slide (walks
and turns progress from the legs' own stepping; runs, jumps and side-steps add set velocities).

Everything is a pure function of ``seed``; the npz files are written with fixed zip timestamps
so equal seeds give byte-identical archives.
"""

from __future__ import annotations

import copy
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation
from smplx.joint_names import SMPLH_JOINT_NAMES
from smplx.lbs import batch_rigid_transform
from tqdm import tqdm

from pipeline.synth import SHIPPED_BODY_MODELS
from pipeline.synth.stats import GROUPS
from shards.atomic import atomic_path
from shards.schema import GENDERS

# --------------------------------------------------------------------------------------------
# Skeleton: the body model's own (rest joints, kinematic tree), posed with smplx
# --------------------------------------------------------------------------------------------

#: SMPL-H joint names in pose order (22 body joints, 15 left-hand, 15 right-hand joints).
JOINT_NAMES: tuple[str, ...] = tuple(SMPLH_JOINT_NAMES[:52])
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")


def default_body_models(out_dir: Path) -> Path:
    """Body models that plant an archive written to ``out_dir``: the sibling ``body_models``
    folder when it holds every gender (the embedded-default layout), else the shipped ones."""
    sibling = Path(out_dir).parent / "body_models"
    if all((sibling / "smplh" / g / "model.npz").is_file() for g in GENDERS):
        return sibling
    return SHIPPED_BODY_MODELS


def body_skeleton(
    body_models: Path, gender: str, betas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rest joints (52, 3) of ``body_models/smplh/<gender>/model.npz`` shaped by ``betas``, and
    its kinematic-tree parents (52,) with -1 at the root.

    Reads the AMASS SMPL+H model format directly: ``J_regressor @ (v_template + shapedirs @ b)``.
    """
    path = Path(body_models) / "smplh" / gender / "model.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SMPL+H model file not found (needed to plant feet)")
    with np.load(path, allow_pickle=False) as m:
        v, sd, jr, tree = m["v_template"], m["shapedirs"], m["J_regressor"], m["kintree_table"]
    k = min(sd.shape[-1], len(betas))
    verts = v + sd[..., :k] @ np.asarray(betas[:k], dtype=np.float64)
    parents = tree[0].astype(np.int64)
    parents[0] = -1  # stored as uint32 -1
    return np.asarray(jr @ verts, dtype=np.float64), parents


def posed_joints(rotmats: np.ndarray, rest: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """(N, J, 3) joints posed by local rotations (N, J, 3, 3) with smplx's kinematic chain
    (the root turns about its rest position; no translation added)."""
    n, nj = rotmats.shape[:2]
    joints = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(rest[:nj], (n, nj, 3))))
    posed, _ = batch_rigid_transform(
        torch.from_numpy(np.ascontiguousarray(rotmats)), joints,
        torch.from_numpy(parents[:nj]), dtype=torch.float64,
    )  # fmt: skip
    return posed.numpy()


# --------------------------------------------------------------------------------------------
# Joint limits (Euler x, y, z in radians, R = Rx @ Rz @ Ry in the parent rest frame)
# --------------------------------------------------------------------------------------------

#: scipy extrinsic sequence giving R = Rx @ Rz @ Ry from angles ordered (y, z, x); the middle
#: angle (z) stays inside (-pi/2, pi/2), so large knee (x) and elbow (y) flexions decompose
#: uniquely.
EULER_SEQ = "yzx"

_J = {name: i for i, name in enumerate(JOINT_NAMES)}


def _lr(name: str, left: list[tuple[float, float]]) -> dict[int, np.ndarray]:
    """Limits for a left/right pair: the right side mirrors y and z (x-reflection)."""
    lo = np.array(left, dtype=float)
    right = lo.copy()
    right[1:] = -lo[1:, ::-1]
    return {_J[f"left_{name}"]: lo, _J[f"right_{name}"]: right}


def _build_limits() -> dict[int, np.ndarray]:
    lim: dict[int, np.ndarray] = {}
    lim.update(_lr("hip", [(-2.1, 0.6), (-0.7, 0.7), (-0.5, 0.9)]))
    lim.update(_lr("knee", [(0.0, 2.6), (-0.3, 0.3), (-0.2, 0.2)]))
    lim.update(_lr("ankle", [(-0.9, 0.8), (-0.4, 0.4), (-0.4, 0.4)]))
    lim.update(_lr("foot", [(-0.6, 0.6), (-0.3, 0.3), (-0.3, 0.3)]))
    lim.update(_lr("collar", [(-0.4, 0.4), (-0.4, 0.4), (-0.4, 0.5)]))
    lim.update(_lr("shoulder", [(-1.8, 1.8), (-1.3, 1.3), (-1.5, 1.5)]))
    lim.update(_lr("elbow", [(-0.8, 0.8), (-2.6, 0.0), (-0.3, 0.3)]))
    lim.update(_lr("wrist", [(-1.0, 1.0), (-0.8, 0.8), (-1.0, 1.0)]))
    for s in ("spine1", "spine2", "spine3"):
        lim[_J[s]] = np.array([(-0.5, 0.9), (-0.5, 0.5), (-0.4, 0.4)])
    lim[_J["neck"]] = np.array([(-0.6, 0.7), (-0.8, 0.8), (-0.5, 0.5)])
    lim[_J["head"]] = np.array([(-0.5, 0.6), (-0.7, 0.7), (-0.4, 0.4)])
    for f in _FINGERS:
        for k in (1, 2, 3):
            if f == "thumb":
                left = [(-0.8, 0.8), (-0.8, 0.8), (-0.8, 0.8)]
            else:
                left = [(-0.3, 0.3), (-0.3, 0.3), (-1.5, 0.2)]
            lim.update(_lr(f"{f}{k}", left))
    return lim


#: Per-joint (3, 2) [low, high] Euler limits for joints 1..51 (x, y, z rows).
JOINT_LIMITS: dict[int, np.ndarray] = _build_limits()

#: Target height of the lowest foot joint (ankle or toe base) above the floor, metres.
FOOT_CLEARANCE = 0.05
_FOOT_JOINTS = (_J["left_ankle"], _J["right_ankle"], _J["left_foot"], _J["right_foot"])


def pose_to_euler(poses: np.ndarray) -> np.ndarray:
    """(N, 156) axis-angle poses -> (N, 52, 3) Euler (x, y, z) with R = Rx @ Rz @ Ry."""
    n = poses.shape[0]
    yzx = Rotation.from_rotvec(poses.reshape(-1, 3)).as_euler(EULER_SEQ)
    return yzx[:, [2, 0, 1]].reshape(n, 52, 3)


# --------------------------------------------------------------------------------------------
# Motion library
# --------------------------------------------------------------------------------------------


@dataclass
class Track:
    """Smooth curves of one motion clip before it becomes AMASS arrays."""

    t: np.ndarray  # (N,) seconds
    euler: np.ndarray  # (N, 52, 3) joint Euler angles (x, y, z); row 0 unused
    tilt: np.ndarray  # (N, 3) body-local root Euler angles (x forward bend, y twist, z side)
    heading: np.ndarray  # (N,) yaw about world z, radians
    forward: np.ndarray  # (N,) speed along the facing direction, m/s
    lateral: np.ndarray  # (N,) speed towards the body's left, m/s
    lift: np.ndarray  # (N,) extra height over the planted pose (jumps), metres
    lock: bool = True  # the supporting foot does not slide: trans follows it horizontally
    contact: np.ndarray | None = None  # (N, 2) left/right foot contact weights (gaits), else
    # the lowest foot supports


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6 * x - 15) + 10)


def _pulse(t: np.ndarray, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """0 -> 1 -> 0 with smooth (C2) ramps: rise, hold, fall durations from ``start``."""
    up = _smoothstep((t - start) / rise)
    down = _smoothstep((t - start - rise - hold) / fall)
    return up - down


def _periodic_pulse(t: np.ndarray, period: float, rise: float, hold: float, fall: float):
    """Sum of ``_pulse`` repeated every ``period`` seconds (starting at 0.2 s)."""
    out = np.zeros_like(t)
    k = 0
    while 0.2 + k * period < t[-1] + period:
        out += _pulse(t, 0.2 + k * period, rise, hold, fall)
        k += 1
    return np.clip(out, 0.0, 1.0)


def _both(e: np.ndarray, name: str, axis: int, left) -> None:
    """Set Euler ``axis`` of ``left_<name>`` to ``left`` and of ``right_<name>`` to its mirror
    image (x-reflection: the right side negates the y and z angles)."""
    e[:, _J[f"left_{name}"], axis] = left
    e[:, _J[f"right_{name}"], axis] = left if axis == 0 else -left


def _pair(name: str) -> list[int]:
    """Joint indices of ``left_<name>`` and ``right_<name>``."""
    return [_J[f"left_{name}"], _J[f"right_{name}"]]


def _base_track(t: np.ndarray, rng: np.random.Generator) -> Track:
    """Relaxed standing pose with breathing, gentle head motion and mild finger curl."""
    n = t.size
    e = np.zeros((n, 52, 3))
    ph = rng.uniform(0, 2 * np.pi, 8)
    # Arms hanging slightly away from the body, elbows a little bent.
    _both(e, "shoulder", 2, -rng.uniform(1.15, 1.3))
    e[:, _J["left_elbow"], 1] = -rng.uniform(0.15, 0.35)
    e[:, _J["right_elbow"], 1] = rng.uniform(0.15, 0.35)
    breath = 0.02 * np.sin(2 * np.pi * 0.25 * t + ph[0])
    e[:, _J["spine3"], 0] += breath
    e[:, _J["neck"], 1] += 0.12 * np.sin(2 * np.pi * 0.13 * t + ph[1])
    e[:, _J["head"], 0] += 0.08 * np.sin(2 * np.pi * 0.17 * t + ph[2])
    # Fingers: slowly varying curl, thumb a little opposed.
    for side, sign, first in (("left", -1.0, 22), ("right", 1.0, 37)):
        curl = rng.uniform(0.1, 0.5) + 0.15 * np.sin(2 * np.pi * 0.3 * t + ph[3 if sign < 0 else 4])
        for f in range(4):
            spread = 0.08 * (f - 1.5) * (1 if side == "left" else -1)
            for k in range(3):
                j = first + 3 * f + k
                e[:, j, 2] = sign * curl * (1.0 + 0.2 * k) * (0.9 + 0.05 * f)
                if k == 0:
                    e[:, j, 1] = spread * 0.5
        for k in range(3):
            j = first + 12 + k
            e[:, j, 0] = 0.3 + 0.1 * k
            e[:, j, 2] = sign * 0.5 * curl
    zeros = np.zeros(n)
    return Track(t, e, np.zeros((n, 3)), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy())


# Walking gait over one cycle (phase 0 = heel strike of that leg; stance until ~0.6):
# hip flexion (forward +), knee flexion, ankle plantar-flexion (toes down +), in radians.
_WALK_KEYS = {
    "hip": ([0.0, 0.15, 0.5, 0.6, 0.75, 0.88, 1.0], [0.45, 0.40, -0.18, -0.26, 0.15, 0.47, 0.45]),
    "knee": ([0.0, 0.15, 0.4, 0.6, 0.73, 0.9, 1.0], [0.08, 0.30, 0.08, 0.65, 1.05, 0.25, 0.08]),
    "ankle": ([0.0, 0.1, 0.45, 0.62, 0.72, 0.9, 1.0], [0.0, 0.1, -0.2, 0.45, 0.05, -0.05, 0.0]),
}


# Running (phase 0 = foot strike; stance until 0.35, flight 0.35-0.5 and 0.85-1).
_RUN_KEYS = {
    "hip": ([0.0, 0.35, 0.5, 0.7, 0.85, 1.0], [0.45, -0.35, -0.2, 0.5, 0.65, 0.45]),
    "knee": ([0.0, 0.15, 0.35, 0.6, 0.85, 1.0], [0.35, 0.75, 0.35, 1.9, 0.5, 0.35]),
    "ankle": ([0.0, 0.18, 0.35, 0.6, 0.9, 1.0], [0.0, -0.4, 0.6, 0.1, -0.05, 0.0]),
}


def _cycle(phase: np.ndarray, keys: tuple[list[float], list[float]]) -> np.ndarray:
    """Periodic C2 cubic through keyframes ``(phases, values)`` evaluated at ``phase`` (cycles)."""
    x, y = keys
    return CubicSpline(x, y, bc_type="periodic")(np.mod(phase, 1.0))


def _stance(phase: np.ndarray, end: float, edge: float = 0.04) -> np.ndarray:
    """Soft 0/1 window: 1 while ``mod(phase, 1)`` is in [0, end] (foot on the ground)."""
    x = np.mod(phase, 1.0)
    return _smoothstep(x / edge) * (1.0 - _smoothstep((x - end + edge) / edge))


def _leg_cycle(
    tr: Track, freq: float, amp: float, rng: np.random.Generator, keys: dict, stance: float
) -> np.ndarray:
    """Keyframed legs (right leg half a cycle behind), counter-swinging arms and foot contacts
    (stance from phase 0 to ``stance``); returns the left leg's phase (cycles)."""
    e, t = tr.euler, tr.t
    phase = freq * t + rng.uniform(0.0, 1.0)
    tr.contact = np.stack([_stance(phase, stance), _stance(phase + 0.5, stance)], axis=1)
    for side, sgn, shift in (("left", 1.0, 0.0), ("right", -1.0, 0.5)):
        ph = phase + shift
        hip = _cycle(ph, keys["hip"])
        e[:, _J[f"{side}_hip"], 0] = -amp * hip
        e[:, _J[f"{side}_knee"], 0] = amp * _cycle(ph, keys["knee"])
        e[:, _J[f"{side}_ankle"], 0] = amp * _cycle(ph, keys["ankle"])
        e[:, _J[f"{side}_hip"], 2] = sgn * 0.04 * np.sin(2 * np.pi * ph)
        # the arm swings forward (-x) while the same-side leg swings back
        e[:, _J[f"{side}_shoulder"], 0] = 0.5 * amp * hip - 0.1
        # the elbow bends as the arm swings forward (the same-side leg back)
        e[:, _J[f"{side}_elbow"], 1] -= sgn * 0.4 * amp * np.clip(0.2 - hip, 0.0, None)
    twist = np.sin(2 * np.pi * phase)
    tr.tilt[:, 1] = 0.08 * amp * twist  # pelvis turns with the forward leg
    e[:, _J["spine2"], 1] = -0.06 * amp * twist
    return phase


def _walk_gait(tr: Track, freq: float, amp: float, rng: np.random.Generator) -> None:
    phase = _leg_cycle(tr, freq, amp, rng, _WALK_KEYS, stance=0.6)
    tr.tilt[:, 0] = 0.05 + 0.02 * np.sin(4 * np.pi * phase)


# Each builder shapes a relaxed standing Track (``_base_track``) into one kind of motion.


def _walk(tr: Track, rng: np.random.Generator, amp: float) -> None:
    _walk_gait(tr, rng.uniform(0.75, 0.9), amp, rng)
    tr.heading += rng.uniform(-0.15, 0.15) * tr.t  # gentle curve


def _run(tr: Track, rng: np.random.Generator, amp: float) -> None:
    phase = _leg_cycle(tr, rng.uniform(1.3, 1.5), amp, rng, _RUN_KEYS, stance=0.35)
    e = tr.euler
    e[:, _J["left_elbow"], 1] = -(1.4 + 0.35 * np.sin(2 * np.pi * phase))  # arms pump
    e[:, _J["right_elbow"], 1] = 1.4 - 0.35 * np.sin(2 * np.pi * phase)
    _both(e, "shoulder", 2, -1.25)
    e[:, _pair("shoulder"), 0] *= 1.6
    tr.tilt[:, 0] = 0.15
    # body highest mid-flight (phases 0.425, 0.925), lowest mid-stance
    tr.lift[:] = 0.04 * (0.5 + 0.5 * np.cos(4 * np.pi * (phase - 0.425)))


def _squat(tr: Track, rng: np.random.Generator, amp: float) -> None:
    e, t = tr.euler, tr.t
    d = 0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(0.3, 0.45) * t)
    d *= amp * rng.uniform(0.8, 1.0)
    tr.tilt[:, 0] = 0.45 * d
    _both(e, "hip", 0, -1.6 * d)
    _both(e, "hip", 2, 0.15 * d)
    _both(e, "knee", 0, 0.04 + 2.0 * d)
    _both(e, "ankle", 0, -0.85 * d)
    _both(e, "shoulder", 0, -1.3 * d)
    e[:, _pair("shoulder"), 2] *= (1 - 0.6 * d)[:, None]
    e[:, _J["spine2"], 0] = 0.15 * d
    e[:, _J["neck"], 0] = -0.3 * d


def _jump(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Jumps in place / forward: crouch, a quick extension at take-off (ankles snap), flight,
    and a landing absorbed by knees, hips and ankles."""
    e, t = tr.euler, tr.t
    period = rng.uniform(1.5, 1.8)
    crouch = _periodic_pulse(t, period, 0.35, 0.05, 0.15)  # crouch, then extend at take-off
    push = _periodic_pulse(t - 0.5, period, 0.1, 0.1, 0.15)  # toes push off, point in flight
    land = _periodic_pulse(t - 0.95, period, 0.1, 0.0, 0.35)  # absorb the landing
    air = np.zeros_like(t)
    k = 0
    flight = 0.4
    while 0.2 + k * period < t[-1]:
        t0 = 0.2 + k * period + 0.55
        x = np.clip((t - t0) / flight, 0.0, 1.0)
        air += np.sin(np.pi * x) ** 2
        k += 1
    tr.tilt[:, 0] = 0.4 * crouch + 0.2 * land
    for s in ("spine1", "spine2", "spine3"):
        e[:, _J[s], 0] += 0.1 * land
    _both(e, "hip", 0, -1.1 * crouch - 0.15 * air - 0.6 * land)
    _both(e, "knee", 0, 1.4 * crouch + 0.25 * air + 0.8 * land)
    _both(e, "ankle", 0, -0.6 * crouch + 0.55 * push - 0.4 * land)
    _both(e, "shoulder", 0, 0.6 * crouch - 1.2 * air)
    _both(e, "shoulder", 2, -(1.2 - 0.4 * air))
    tr.lift[:] = rng.uniform(0.2, 0.35) * amp * air
    tr.forward[:] = 0.6 * air
    tr.lock = False  # feet leave the floor / slide on purpose


def _wave(tr: Track, rng: np.random.Generator, amp: float) -> None:
    e, t = tr.euler, tr.t
    side = "right" if rng.random() < 0.7 else "left"
    sgn = 1.0 if side == "left" else -1.0
    up = _pulse(t, 0.2, 0.6, t[-1] - 1.6, 0.6)
    e[:, _J[f"{side}_shoulder"], 2] = (1 - up) * e[:, _J[f"{side}_shoulder"], 2] + up * sgn * 0.2
    e[:, _J[f"{side}_shoulder"], 0] = -1.4 * up
    wav = 0.5 * amp * np.sin(2 * np.pi * rng.uniform(1.8, 2.6) * t)
    e[:, _J[f"{side}_elbow"], 1] = -sgn * (0.3 + up * (1.0 + wav))
    e[:, _J[f"{side}_wrist"], 2] = sgn * 0.3 * up * wav
    e[:, _J["neck"], 1] += -sgn * 0.2 * up


def _reach(tr: Track, rng: np.random.Generator, amp: float) -> None:
    e, t = tr.euler, tr.t
    period = rng.uniform(2.0, 2.6)
    for k, side in enumerate(("left", "right")):
        sgn = 1.0 if side == "left" else -1.0
        r = _periodic_pulse(t - k * period / 2, period, 0.6, 0.3, 0.6)
        high = rng.uniform(0.0, 0.4)
        e[:, _J[f"{side}_shoulder"], 0] = -(1.3 + high) * amp * r
        e[:, _J[f"{side}_shoulder"], 2] *= 1 - 0.3 * r
        e[:, _J[f"{side}_elbow"], 1] *= 1 - 0.8 * r
        e[:, _J["spine2"], 0] += 0.15 * r
        e[:, _J["spine3"], 1] += -sgn * 0.2 * r
        tr.tilt[:, 0] += 0.1 * r
    _both(e, "hip", 0, -0.9 * tr.tilt[:, 0])


def _kick(tr: Track, rng: np.random.Generator, amp: float) -> None:
    e, t = tr.euler, tr.t
    side = "right" if rng.random() < 0.6 else "left"
    sgn = 1.0 if side == "left" else -1.0
    period = rng.uniform(1.6, 2.0)
    chamber = _periodic_pulse(t, period, 0.3, 0.05, 0.5)
    strike = _periodic_pulse(t - 0.25, period, 0.13, 0.1, 0.35)
    e[:, _J[f"{side}_hip"], 0] = -(0.7 * chamber + 0.7 * strike) * amp
    e[:, _J[f"{side}_knee"], 0] = 0.04 + 1.4 * chamber * (1 - 0.85 * strike)
    e[:, _J[f"{side}_ankle"], 0] = -0.4 * strike
    other = "left" if side == "right" else "right"
    e[:, _J[f"{other}_knee"], 0] = 0.04 + 0.2 * chamber
    e[:, _J[f"{other}_ankle"], 0] = -0.1 * chamber
    e[:, _J[f"{other}_hip"], 0] = -0.1 * chamber
    tr.tilt[:, 0] = -0.15 * strike
    for s in ("spine1", "spine2", "spine3"):
        e[:, _J[s], 0] -= 0.12 * strike  # the trunk leans back against the kick
    _both(e, "shoulder", 2, -(1.2 - 0.5 * chamber))
    tr.tilt[:, 2] = sgn * 0.06 * chamber


def _sit(tr: Track, rng: np.random.Generator, amp: float) -> None:
    e, t = tr.euler, tr.t
    dur = t[-1]
    s = _pulse(t, 0.3, 0.3 * dur, 0.25 * dur, 0.3 * dur) * amp
    tr.tilt[:, 0] = 0.35 * s
    _both(e, "hip", 0, -1.5 * s)
    _both(e, "hip", 2, 0.12 * s)
    _both(e, "knee", 0, 0.04 + 1.55 * s)
    _both(e, "ankle", 0, -0.4 * s)
    _both(e, "shoulder", 0, -0.5 * s)
    _both(e, "elbow", 1, -(0.3 + 0.9 * s))
    e[:, _J["spine2"], 0] = -0.1 * s
    e[:, _J["neck"], 0] = -0.2 * s


def _turn(tr: Track, rng: np.random.Generator, amp: float) -> None:
    t = tr.t
    _walk_gait(tr, rng.uniform(0.9, 1.1), 0.5 * amp, rng)
    total = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.0) * np.pi
    tr.heading[:] = total * _smoothstep((t - 0.2) / (t[-1] - 0.4))
    tr.euler[:, _J["neck"], 1] += 0.2 * np.sign(total) * np.gradient(tr.heading, t) / np.pi


def _bend(tr: Track, rng: np.random.Generator, amp: float) -> None:
    e, t = tr.euler, tr.t
    b = (0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(0.25, 0.35) * t)) * amp
    tr.tilt[:, 0] = 0.9 * b
    _both(e, "hip", 0, -0.8 * b)
    _both(e, "knee", 0, 0.04 + 0.15 * b)
    _both(e, "ankle", 0, -0.1 * b)
    _both(e, "shoulder", 0, -1.1 * b)
    for s in ("spine1", "spine2", "spine3"):
        e[:, _J[s], 0] = 0.2 * b
    e[:, _J["neck"], 0] = -0.2 * b


def _throw(tr: Track, rng: np.random.Generator, amp: float) -> None:
    e, t = tr.euler, tr.t
    side = "right" if rng.random() < 0.75 else "left"
    sgn = 1.0 if side == "left" else -1.0
    period = rng.uniform(2.0, 2.5)
    wind = _periodic_pulse(t, period, 0.6, 0.1, 0.25)
    rel = _periodic_pulse(t - 0.75, period, 0.12, 0.1, 0.6)
    e[:, _J[f"{side}_shoulder"], 2] = -sgn * (1.2 * (1 - wind) * (1 - rel) - 0.1 * wind)
    e[:, _J[f"{side}_shoulder"], 0] = 0.4 * wind - 1.3 * rel * amp
    e[:, _J[f"{side}_elbow"], 1] = -sgn * (0.3 + 1.4 * wind * (1 - rel) + 0.2 * rel)
    twist = sgn * (0.5 * wind - 0.7 * rel)
    for s in ("spine1", "spine2", "spine3"):
        e[:, _J[s], 1] = twist / 3
    tr.tilt[:, 1] = 0.5 * twist
    tr.tilt[:, 0] = 0.2 * rel
    other = "left" if side == "right" else "right"
    e[:, _J[f"{other}_hip"], 0] = -0.4 * rel
    e[:, _J[f"{other}_knee"], 0] = 0.04 + 0.4 * rel
    e[:, _J[f"{other}_shoulder"], 0] = -0.6 * wind


def _jacks(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Jumping jacks: two hops a cycle (feet apart, together), arms up overhead and down;
    ankles push off and knees absorb each landing."""
    e, t = tr.euler, tr.t
    period = 1.0 / rng.uniform(0.85, 1.1)
    o = 0.5 - 0.5 * np.cos(2 * np.pi * t / period)  # 0 closed, 1 open
    hop = _periodic_pulse(t - period / 4 + 0.35, period / 2, 0.1, 0.1, 0.1)  # mid-transition
    _both(e, "shoulder", 2, -1.25 + 2.45 * o * amp)
    _both(e, "elbow", 1, -(0.2 + 0.4 * o))
    _both(e, "hip", 2, 0.5 * o)
    _both(e, "hip", 0, -0.2 * (1 - hop))
    _both(e, "knee", 0, 0.4 * (1 - hop))
    _both(e, "ankle", 0, 0.5 * hop - 0.2 * (1 - hop))
    tr.lift[:] = 0.1 * hop
    tr.lock = False  # feet leave the floor / slide on purpose


def _skip(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Rope skipping: quick low hops (two feet, or feet taking turns), ankles doing the work,
    knees soft, forearms turning the rope."""
    e, t = tr.euler, tr.t
    period = 1.0 / rng.uniform(1.8, 2.4)
    alternate = rng.random() < 0.5
    for k, side in enumerate(("left", "right")):
        shift = 0.5 * period * k if alternate else 0.0
        hop = _periodic_pulse(t - shift, period * (2 if alternate else 1), 0.08, 0.08, 0.1)
        e[:, _J[f"{side}_ankle"], 0] = 0.55 * hop - 0.15
        e[:, _J[f"{side}_knee"], 0] = 0.35 * (1 - hop) + (0.5 * hop if alternate else 0.0)
        e[:, _J[f"{side}_hip"], 0] = -0.2 * (1 - hop) - (0.4 * hop if alternate else 0.0)
    rope = 2 * np.pi * t / period
    _both(e, "shoulder", 2, -0.9 + 0.1 * np.sin(rope))
    _both(e, "shoulder", 0, -0.3 + 0.1 * np.cos(rope))
    _both(e, "elbow", 1, -(1.0 + 0.25 * np.sin(rope)))
    _both(e, "wrist", 2, 0.4 * np.cos(rope))
    hop = _periodic_pulse(t, period / (2 if alternate else 1), 0.08, 0.08, 0.1)
    tr.lift[:] = 0.06 * hop
    tr.lock = False  # feet leave the floor / slide on purpose


def _box(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Shadow boxing: guard up, quick straight punches at irregular intervals (the elbow
    extends, the shoulder drives forward, the trunk twists into it) on bouncing knees."""
    e, t = tr.euler, tr.t
    _both(e, "shoulder", 0, -0.7)
    _both(e, "shoulder", 2, -1.0)
    _both(e, "elbow", 1, -2.0)
    punch = {"left": np.zeros_like(t), "right": np.zeros_like(t)}
    start = 0.3
    while start < t[-1]:
        side = "left" if rng.random() < 0.5 else "right"
        punch[side] += _pulse(t, start, 0.15, 0.05, 0.25) * rng.uniform(0.7, 1.0)
        start += rng.uniform(0.35, 0.75)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        p = np.clip(punch[side], 0.0, 1.0) * amp
        e[:, _J[f"{side}_shoulder"], 0] -= 0.7 * p
        e[:, _J[f"{side}_shoulder"], 2] += sgn * 0.4 * p
        e[:, _J[f"{side}_elbow"], 1] += sgn * 1.8 * p
        e[:, _J[f"{side}_collar"], 1] -= sgn * 0.3 * p  # the shoulder blade drives forward
        for s in ("spine1", "spine2", "spine3"):
            e[:, _J[s], 1] -= sgn * 0.15 * p
        tr.tilt[:, 1] -= sgn * 0.12 * p
    bounce = _periodic_pulse(t, 1.0 / rng.uniform(1.6, 2.2), 0.1, 0.05, 0.2)  # on the toes
    _both(e, "knee", 0, 0.25 + 0.2 * bounce)
    _both(e, "hip", 0, -0.15 - 0.1 * bounce)
    _both(e, "ankle", 0, 0.3 - 0.45 * bounce)
    tr.tilt[:, 0] += 0.15


def _sidestep(tr: Track, rng: np.random.Generator, amp: float) -> None:
    e, t = tr.euler, tr.t
    freq = rng.uniform(0.8, 1.0)
    phi = 2 * np.pi * freq * t
    direction = rng.choice([-1.0, 1.0])
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        p = phi + (0 if sgn > 0 else np.pi)
        e[:, _J[f"{side}_hip"], 2] = sgn * 0.3 * amp * np.clip(np.sin(p), 0, None) ** 2
        e[:, _J[f"{side}_knee"], 0] = 0.1 + 0.3 * np.clip(np.sin(p), 0, None) ** 2
        e[:, _J[f"{side}_hip"], 0] = -0.15 * np.clip(np.sin(p), 0, None) ** 2
        e[:, _J[f"{side}_ankle"], 0] = 0.6 * np.clip(np.sin(p - 0.6), 0, None) ** 6  # push-off
    tr.lateral[:] = direction * 0.5 * _smoothstep(t / 0.5)
    tr.lock = False  # feet leave the floor / slide on purpose


def _idle(tr: Track, rng: np.random.Generator, amp: float) -> None:
    e, t = tr.euler, tr.t
    sway = np.sin(2 * np.pi * rng.uniform(0.15, 0.3) * t)
    tr.tilt[:, 2] = 0.04 * sway
    e[:, _pair("hip"), 2] = (-0.04 * sway)[:, None]
    e[:, _J["spine3"], 1] = 0.15 * np.sin(2 * np.pi * 0.2 * t)
    look = _pulse(t, 0.5, 0.6, 0.8, 0.6)
    e[:, _J["neck"], 1] += 0.5 * look * rng.choice([-1.0, 1.0])
    e[:, _J["left_elbow"], 1] -= 0.8 * look


def _crouch(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Crouch down (forearms over the knees), shift the weight and look around, stand up."""
    e, t = tr.euler, tr.t
    dur = t[-1]
    c = _pulse(t, 0.3, 0.25 * dur, 0.35 * dur, 0.25 * dur) * amp
    shift = np.sin(2 * np.pi * rng.uniform(0.4, 0.7) * t) * c
    tr.tilt[:, 0] = 0.5 * c
    tr.tilt[:, 2] = 0.1 * shift
    _both(e, "hip", 0, -1.7 * c)
    _both(e, "hip", 2, 0.25 * c)
    _both(e, "knee", 0, 2.0 * c)
    _both(e, "ankle", 0, -0.5 * c)
    e[:, _pair("hip"), 2] -= (0.1 * shift)[:, None]
    _both(e, "shoulder", 0, -0.8 * c)
    _both(e, "elbow", 1, -(0.3 + 0.9 * c))
    e[:, _J["neck"], 1] += 0.6 * c * np.sin(2 * np.pi * rng.uniform(0.2, 0.35) * t)


def _floor_reach(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Reach one hand to the floor, bending at hips and knees and twisting towards it; the
    hands take turns."""
    e, t = tr.euler, tr.t
    period = rng.uniform(2.2, 2.8)
    first = int(rng.integers(2))
    for k, side in enumerate(("left", "right")):
        sgn = 1.0 if side == "left" else -1.0
        r = _periodic_pulse(t - ((k + first) % 2) * period, 2 * period, 0.7, 0.3, 0.7) * amp
        tr.tilt[:, 0] += 0.8 * r
        tr.tilt[:, 1] += sgn * 0.15 * r
        e[:, _pair("hip"), 0] -= (1.4 * r)[:, None]
        e[:, _pair("knee"), 0] += (1.0 * r)[:, None]
        e[:, _pair("ankle"), 0] -= (0.4 * r)[:, None]
        for s in ("spine1", "spine2", "spine3"):
            e[:, _J[s], 0] += 0.15 * r
            e[:, _J[s], 1] += sgn * 0.1 * r
        e[:, _J[f"{side}_shoulder"], 0] -= 1.0 * r
        e[:, _J[f"{side}_elbow"], 1] *= 1 - 0.8 * r
        other = "right" if side == "left" else "left"
        e[:, _J[f"{other}_shoulder"], 0] -= 0.5 * r  # hand on the knee
        e[:, _J[f"{other}_elbow"], 1] *= 1 + 1.5 * r


def _lunge(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Forward lunges, legs taking turns: the front thigh comes forward (about 57 deg), the
    back thigh goes back and its knee sinks towards the floor, the back foot on its toes."""
    e, t = tr.euler, tr.t
    period = rng.uniform(1.8, 2.4)
    first = int(rng.integers(2))
    for k, (front, back) in enumerate((("left", "right"), ("right", "left"))):
        d = _periodic_pulse(t - ((k + first) % 2) * period, 2 * period, 0.6, 0.3, 0.6) * amp
        tr.tilt[:, 0] += 0.1 * d
        e[:, _J[f"{front}_hip"], 0] -= 1.1 * d
        e[:, _J[f"{front}_knee"], 0] += 1.3 * d
        e[:, _J[f"{front}_ankle"], 0] -= 0.3 * d
        e[:, _J[f"{back}_hip"], 0] += 0.35 * d
        e[:, _J[f"{back}_knee"], 0] += 0.7 * d
        e[:, _J[f"{back}_ankle"], 0] += 0.1 * d
        e[:, _J[f"{back}_foot"], 0] -= 0.4 * d
        e[:, _J[f"{front}_shoulder"], 0] += 0.4 * d  # arms swing against the legs
        e[:, _J[f"{back}_shoulder"], 0] -= 0.6 * d


#: Free dance: key-pose channels (Euler of the left joint; the right mirrors) and their ranges.
_DANCE_KEYS = {
    ("left_shoulder", 0): (-1.6, 0.4),
    ("right_shoulder", 0): (-1.6, 0.4),
    ("left_shoulder", 2): (-1.3, 0.6),
    ("right_shoulder", 2): (-1.3, 0.6),
    ("left_elbow", 1): (-1.8, -0.1),
    ("right_elbow", 1): (-1.8, -0.1),
    ("spine2", 1): (-0.3, 0.3),
    ("spine2", 2): (-0.15, 0.15),
    ("neck", 1): (-0.4, 0.4),
    ("left_hip", 2): (-0.05, 0.25),
    ("right_hip", 2): (-0.05, 0.25),
}


def _dance(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Free dance to a beat: knees bounce on every beat, the pelvis sways every two, and arms,
    trunk, head and the side steps move through random key poses, one per beat."""
    e, t = tr.euler, tr.t
    beat = rng.uniform(1.6, 2.2)  # Hz
    bt = np.arange(int(t[-1] * beat) + 3) / beat
    lo, hi = np.array(list(_DANCE_KEYS.values())).T
    keys = CubicSpline(bt, rng.uniform(lo, hi, (bt.size, lo.size)), bc_type="natural")(t)
    for c, (name, axis) in enumerate(_DANCE_KEYS):
        mirror = -1.0 if name.startswith("right_") and axis else 1.0
        e[:, _J[name], axis] = mirror * keys[:, c] * amp
    bounce = _periodic_pulse(t, 1.0 / beat, 0.1, 0.05, 0.2)  # down on every beat
    _both(e, "knee", 0, 0.3 * bounce * amp)
    _both(e, "hip", 0, -0.15 * bounce * amp)
    _both(e, "ankle", 0, 0.45 * (1 - bounce) * amp - 0.2)  # up on the toes between beats
    tr.tilt[:, 2] = 0.1 * np.sin(np.pi * beat * t) * amp
    for s in ("spine1", "spine3"):  # the whole spine twists and bends with the chest
        e[:, _J[s], 1:] = 0.7 * e[:, _J["spine2"], 1:]
    tr.tilt[:, 1] = 0.5 * e[:, _J["spine2"], 1]


def _turn_in_place(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Turn on the spot by 180-360 deg with small quick steps, head and chest leading."""
    t = tr.t
    _walk_gait(tr, rng.uniform(1.2, 1.5), 0.3 * amp, rng)
    total = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0) * np.pi
    tr.heading[:] = total * _smoothstep((t - 0.3) / (t[-1] - 0.6))
    rate = np.gradient(tr.heading, t)
    tr.euler[:, _J["neck"], 1] += 0.15 * rate
    tr.euler[:, _J["spine3"], 1] += 0.05 * rate


#: Motion kinds: name -> (builder, (min, max) duration in seconds).
MOTIONS: dict[str, tuple[Callable, tuple[float, float]]] = {
    "walk": (_walk, (4.0, 6.0)),
    "run": (_run, (3.0, 4.5)),
    "squat": (_squat, (4.0, 6.0)),
    "jump": (_jump, (3.5, 5.0)),
    "wave": (_wave, (3.0, 4.5)),
    "reach": (_reach, (4.0, 5.5)),
    "kick": (_kick, (3.5, 5.0)),
    "sit": (_sit, (4.0, 6.0)),
    "turn": (_turn, (3.5, 5.0)),
    "bend": (_bend, (4.0, 6.0)),
    "throw": (_throw, (4.0, 5.5)),
    "jumping_jacks": (_jacks, (3.5, 5.0)),
    "sidestep": (_sidestep, (3.0, 4.5)),
    "idle": (_idle, (3.0, 4.5)),
    "crouch": (_crouch, (4.0, 5.5)),
    "floor_reach": (_floor_reach, (4.5, 6.0)),
    "lunge": (_lunge, (4.0, 5.5)),
    "dance": (_dance, (4.0, 6.0)),
    "turn_in_place": (_turn_in_place, (3.5, 5.0)),
    "box": (_box, (3.5, 5.0)),
    "skip": (_skip, (3.0, 4.5)),
}


# --------------------------------------------------------------------------------------------
# What makes clips unlike each other: subject style, tempo, amplitude, posture, mocap texture
# --------------------------------------------------------------------------------------------
#
# Every builder writes one nominal performance. Four general layers, applied to every clip in
# this order, make it one subject's, one take's:
#   1. clock: the builder runs on a warped clock (subject tempo, drifting from rep to rep);
#   2. _vary: the motion's deviation from the standing pose is scaled by slowly drifting gains
#      (per repetition, and left and right apart), and the right side trails the left a little;
#   3. _secondary: joints that follow others (collars lift with the arms, wrists and toes
#      lag behind the limb, the head stays level);
#   4. _posture + _texture: the subject's standing posture (pelvis tilt with its compensation,
#      toe-out, shoulder girdle, wrists, spine curve) and band-limited noise on every joint and
#      the root (slow postural wander, sway, and the small fast jitter of mocap).


@dataclass(frozen=True)
class Style:
    """How one subject moves (drawn once per subject by :func:`subject_style`)."""

    tempo: float  # clock rate over the builders' nominal tempo
    energy: float  # gain of the motion over the standing pose
    sides: tuple[float, float]  # extra left / right gains (asymmetry)
    lag: float  # seconds the right side trails the left in two-sided (non-gait) motions
    pelvis_tilt: float  # forward pelvis tilt of the standing posture, radians
    posture: np.ndarray  # (52, 3) static Euler offsets of the standing posture
    texture: float  # gain of the mocap texture


def subject_style(rng: np.random.Generator) -> Style:
    """Draw a subject's style; left and right posture offsets differ by a few degrees."""
    p = np.zeros((52, 3))
    left = {  # (name, axis): (low, high) radians of the left joint; the right mirrors it
        ("hip", 1): (0.05, 0.2),  # toe-out
        ("hip", 2): (0.02, 0.1),  # stance a little wide
        ("knee", 0): (0.12, 0.25),  # soft knees
        ("ankle", 0): (-0.2, -0.05),  # dorsiflexed under soft knees
        ("ankle", 1): (0.15, 0.35),  # feet turned out
        ("ankle", 2): (-0.1, 0.1),
        ("foot", 0): (-0.3, -0.1),
        ("foot", 1): (-0.3, 0.3),
        ("collar", 1): (-0.2, -0.05),  # shoulder girdle: protracted, raised
        ("collar", 2): (0.1, 0.25),
        ("shoulder", 1): (-0.3, 0.1),
        ("wrist", 0): (-0.15, 0.15),
        ("wrist", 1): (-0.2, 0.2),
        ("wrist", 2): (-0.3, -0.1),
    }
    for (name, axis), (lo, hi) in left.items():
        v = rng.uniform(lo, hi)
        dl, dr = rng.normal(0.0, 0.04, 2)  # each side its own
        p[_J[f"left_{name}"], axis] = v + dl
        p[_J[f"right_{name}"], axis] = (v + dr) * (1.0 if axis == 0 else -1.0)
    for name, (lo, hi) in {"spine1": (-0.2, -0.05), "spine2": (0.0, 0.1), "spine3": (0.1, 0.25),
                           "neck": (0.1, 0.3), "head": (-0.25, -0.05)}.items():  # fmt: skip
        p[_J[name], 0] = rng.uniform(lo, hi)  # lumbar lordosis, thoracic kyphosis, head forward
        p[_J[name], 1:] = rng.normal(0.0, 0.05, 2)
    sides = 1.0 + rng.normal(0.0, 0.1, 2)
    return Style(
        tempo=rng.uniform(1.0, 1.35),
        energy=rng.uniform(1.0, 1.3),
        sides=(float(sides[0]), float(sides[1])),
        lag=rng.uniform(0.03, 0.09) * rng.choice([-1.0, 1.0]),
        pelvis_tilt=rng.uniform(0.1, 0.22),
        posture=p,
        texture=rng.uniform(0.8, 1.2),
    )


def band_noise(
    rng: np.random.Generator, n: int, fps: float, band: tuple[float, float], channels: int = 1
) -> np.ndarray:
    """(n, channels) Gaussian noise with unit RMS whose spectrum is flat inside ``band`` (Hz) and
    zero outside (FFT filter over at least 10 s, so short clips get slow bands too)."""
    m = max(n, int(10 * fps))
    white = rng.standard_normal((m, channels))
    spec = np.fft.rfft(white, axis=0)
    f = np.fft.rfftfreq(m, 1.0 / fps)
    spec[(f < band[0]) | (f > band[1])] = 0.0
    x = np.fft.irfft(spec, m, axis=0)
    return (x / np.maximum(x.std(axis=0), 1e-12))[:n]


def warped_clock(t: np.ndarray, rng: np.random.Generator, tempo: float) -> np.ndarray:
    """The clock a builder runs on: ``tempo`` on average, drifting +-10 % (rep to rep)."""
    fps = 1.0 / (t[1] - t[0]) if t.size > 1 else 60.0
    rate = tempo * (1.0 + 0.1 * band_noise(rng, t.size, fps, (0.05, 0.5))[:, 0])
    return np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(t))])


_LEFT = [j for j, name in enumerate(JOINT_NAMES) if name.startswith("left_")]
_RIGHT = [_J["right_" + JOINT_NAMES[j][5:]] for j in _LEFT]


def _vary(tr: Track, stand: Track, rng: np.random.Generator, style: Style) -> None:
    """Scale the motion's deviation from ``stand`` by drifting per-side gains; in two-sided
    motions without a gait the right side trails the left by ``style.lag``."""
    n, fps = tr.t.size, 1.0 / (tr.t[1] - tr.t[0])
    dev = tr.euler - stand.euler
    if tr.contact is None and n > 1:
        src = np.clip(tr.t - style.lag, tr.t[0], tr.t[-1])
        flat = dev[:, _RIGHT].reshape(n, -1)
        dev[:, _RIGHT] = np.stack([np.interp(src, tr.t, c) for c in flat.T], axis=1).reshape(
            n, len(_RIGHT), 3
        )
    drift = 1.0 + band_noise(rng, n, fps, (0.1, 0.6), 3) * np.array([0.12, 0.08, 0.08])
    centre = style.energy * drift[:, 0]
    gain = np.repeat(centre[:, None], 52, axis=1)
    gain[:, _LEFT] *= (style.sides[0] * drift[:, 1])[:, None]
    gain[:, _RIGHT] *= (style.sides[1] * drift[:, 2])[:, None]
    tr.euler = stand.euler + gain[..., None] * dev
    tr.tilt = stand.tilt + centre[:, None] * (tr.tilt - stand.tilt)
    tr.lift = tr.lift * centre


def _mirror(v: np.ndarray) -> np.ndarray:
    """Right-side Euler angles as the left side's (and back): negate y and z."""
    return v * np.array([1.0, -1.0, -1.0])


def _secondary(tr: Track, stand: Track) -> None:
    """Joints that follow others: collars lift and protract with the arm, wrists and toes lag
    behind their limb's motion, the neck keeps the head level over a tilting pelvis."""
    e, t = tr.euler, tr.t
    for side in ("left", "right"):
        flip = _mirror if side == "right" else (lambda v: v)
        sh = flip(e[:, _J[f"{side}_shoulder"]] - stand.euler[:, _J[f"{side}_shoulder"]])
        col = np.zeros_like(sh)
        col[:, 2] = 0.5 * np.clip(sh[:, 2], 0.0, None) + 0.2 * np.clip(-sh[:, 0], 0.0, None)
        col[:, 1] = 0.3 * sh[:, 0]
        e[:, _J[f"{side}_collar"]] += flip(col)
        arm = np.gradient(flip(e[:, _J[f"{side}_shoulder"]] + e[:, _J[f"{side}_elbow"]]), t, axis=0)
        arm = gaussian_filter1d(arm, sigma=0.05 / (t[1] - t[0]), axis=0, mode="nearest")
        e[:, _J[f"{side}_wrist"]] += flip(-0.08 * arm)  # the hand drags behind the arm
        ankle = e[:, _J[f"{side}_ankle"], 0] - stand.euler[:, _J[f"{side}_ankle"], 0]
        e[:, _J[f"{side}_foot"], 0] -= 0.5 * np.clip(ankle, 0.0, None)  # toes bend at push-off
    swing = [e[:, j, 0] - stand.euler[:, j, 0] for j in _pair("shoulder")]
    for s in ("spine2", "spine3"):  # the chest turns away from the arm that goes forward
        e[:, _J[s], 1] += 0.08 * (swing[0] - swing[1])
    e[:, _J["neck"], 0] -= 0.4 * (tr.tilt[:, 0] - stand.tilt[:, 0])
    e[:, _J["neck"], 1] -= 0.3 * (tr.tilt[:, 1] - stand.tilt[:, 1])


def _posture(tr: Track, style: Style) -> None:
    """Add the subject's standing posture: static offsets, and a forward-tilted pelvis whose
    tilt the hips (legs stay vertical) and the spine (trunk stays upright) take back."""
    tr.euler += style.posture
    a = style.pelvis_tilt
    tr.tilt[:, 0] += a
    tr.euler[:, _pair("hip"), 0] -= a
    for s in ("spine1", "spine2", "spine3"):
        tr.euler[:, _J[s], 0] -= a / 3


#: Mocap texture: RMS (degrees, per Euler axis) of band-limited noise in each joint group in the
#: slow (postural wander), middle (sway) and fast (jitter) bands of ``TEXTURE_BANDS`` (the fast
#: band stops at 0.3 x the frame rate, below Nyquist at 60 fps). Planted feet keep still on
#: average (the support lock follows them up to ~5 Hz) but carry the jitter, a few mm.
TEXTURE_BANDS = ((0.15, 1.0), (1.0, 4.0), (4.0, 25.0))
#: Log-normal spread of the envelope of the sway and jitter bands (0: steady).
TEXTURE_BURST = 0.7
TEXTURE: dict[str, tuple[float, float, float]] = {
    "hips": (2.0, 1.5, 0.65),
    "knees": (2.0, 1.5, 0.7),
    "ankles": (3.0, 5.0, 1.0),
    "feet": (3.0, 2.5, 1.0),
    "spine": (1.5, 2.2, 0.35),
    "neck": (3.0, 2.5, 0.5),
    "head": (3.0, 2.5, 0.5),
    "collars": (2.5, 3.5, 0.55),
    "shoulders": (4.0, 2.0, 0.7),
    "elbows": (4.0, 3.8, 0.75),
    "wrists": (5.0, 2.5, 0.85),
    "root": (1.5, 0.8, 0.0),  # pelvis tilt axes (no jitter: it would shake the planted feet)
    "heading": (4.0, 1.5, 0.0),
}


def _texture(tr: Track, rng: np.random.Generator, style: Style) -> None:
    """Add band-limited noise (``TEXTURE``) to every body joint, the pelvis tilt and heading.

    The sway and jitter bands of a group swell and fade together under a slow log-normal
    envelope (unit mean square): restless moments and quiet ones, not a steady hum.
    """
    n, fps = tr.t.size, 1.0 / (tr.t[1] - tr.t[0])
    bands = [(lo, min(hi, 0.3 * fps)) for lo, hi in TEXTURE_BANDS]

    def noise(group: str, channels: int) -> np.ndarray:
        rms = np.radians(TEXTURE[group]) * style.texture
        s = TEXTURE_BURST
        envelope = np.exp(s * band_noise(rng, n, fps, (0.1, 0.5)) - s * s)
        out = rms[0] * band_noise(rng, n, fps, bands[0], channels)
        for r, b in zip(rms[1:], bands[1:]):
            out += envelope * r * band_noise(rng, n, fps, b, channels)
        return out

    for group, names in GROUPS.items():
        idx = [_J[name] for name in names]
        tr.euler[:, idx] += noise(group, 3 * len(idx)).reshape(n, len(idx), 3)
    tr.tilt += noise("root", 3)
    tr.heading += noise("heading", 1)[:, 0]


# --------------------------------------------------------------------------------------------
# Track -> AMASS arrays
# --------------------------------------------------------------------------------------------

_YUP_TO_ZUP = Rotation.from_euler("x", np.pi / 2)


def _softmin(z: np.ndarray, tau: float = 0.01) -> np.ndarray:
    """Smooth minimum over the last axis (differentiable stand-in for min)."""
    m = z.min(axis=-1, keepdims=True)
    return (m - tau * np.log(np.exp(-(z - m) / tau).sum(axis=-1, keepdims=True)))[..., 0]


def _clip_to_limits(euler: np.ndarray) -> np.ndarray:
    out = euler.copy()
    for j, lim in JOINT_LIMITS.items():
        out[:, j] = np.clip(out[:, j], lim[:, 0], lim[:, 1])
    return out


def _support_velocity(tr: Track, pos: np.ndarray, fps: float) -> np.ndarray:
    """(N, 2) horizontal body velocity that keeps the supporting foot still.

    Support comes from ``tr.contact`` (gaits; in flight the velocity of the last and next
    stance is interpolated) or, without it, from a softmax over the lowest foot joints.
    """
    feet = pos[:, _FOOT_JOINTS]  # left ankle, right ankle, left toe, right toe
    foot_vel = np.gradient(feet[..., :2], tr.t, axis=0)
    if tr.contact is None:
        z = feet[..., 2]
        w = np.exp(-(z - z.min(axis=1, keepdims=True)) / 0.015)
        w /= w.sum(axis=1, keepdims=True)
        support = -(w[..., None] * foot_vel).sum(axis=1)
    else:
        per_foot = 0.5 * (foot_vel[:, [0, 1]] + foot_vel[:, [2, 3]])  # (N, 2 feet, 2)
        total = tr.contact.sum(axis=1)
        w = tr.contact / np.maximum(total, 1e-9)[:, None]
        support = -(w[..., None] * per_foot).sum(axis=1)
        on = total > 0.5
        if on.any() and not on.all():
            for k in range(2):
                support[~on, k] = np.interp(tr.t[~on], tr.t[on], support[on, k])
    return gaussian_filter1d(support, sigma=0.03 * fps, axis=0, mode="nearest")


def track_to_amass(
    tr: Track, skeleton: tuple[np.ndarray, np.ndarray], start_xy: np.ndarray, heading0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a Track into AMASS ``poses`` (N, 156) and ``trans`` (N, 3) (z-up world), planted
    with ``skeleton`` = (rest joints, parents) of the body model (:func:`body_skeleton`)."""
    joints, parents = skeleton
    n = tr.t.size
    fps = 1.0 / (tr.t[1] - tr.t[0]) if n > 1 else 60.0
    euler = _clip_to_limits(tr.euler)
    local = Rotation.from_euler(EULER_SEQ, euler.reshape(-1, 3)[:, [1, 2, 0]])
    poses = local.as_rotvec().reshape(n, 52, 3)
    heading = heading0 + tr.heading
    tilt = Rotation.from_euler(EULER_SEQ, tr.tilt[:, [1, 2, 0]])
    root = Rotation.from_euler("z", heading[:, None]) * _YUP_TO_ZUP * tilt
    poses[:, 0] = root.as_rotvec()
    rotmats = local.as_matrix().reshape(n, 52, 3, 3)
    rotmats[:, 0] = root.as_matrix()
    pos = posed_joints(rotmats[:, :22], joints, parents)
    lowest = _softmin(pos[:, _FOOT_JOINTS, 2])
    dt = np.diff(tr.t, prepend=tr.t[0])
    fwd = np.stack([np.sin(heading), -np.cos(heading)], axis=1)
    left = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    vel = tr.forward[:, None] * fwd + tr.lateral[:, None] * left
    if tr.lock and n > 2:
        vel = vel + _support_velocity(tr, pos, fps)
    xy = start_xy + np.cumsum(vel * dt[:, None], axis=0) - joints[0, :2]
    # Light smoothing (sigma 40 ms) of the planted height removes kinks when support switches feet.
    z = gaussian_filter1d(FOOT_CLEARANCE - lowest, sigma=0.04 * fps, mode="nearest") + tr.lift
    trans = np.concatenate([xy, z[:, None]], axis=1)
    return poses.reshape(n, 156), trans


# --------------------------------------------------------------------------------------------
# Archive layout
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectSpec:
    subset: str
    name: str
    gender: str


_SUBJECTS = (
    SubjectSpec("SynthCMU", "s01", "male"),
    SubjectSpec("SynthCMU", "s02", "female"),
    SubjectSpec("SynthCMU", "s03", "male"),
    SubjectSpec("SynthKIT", "k101", "female"),
    SubjectSpec("SynthKIT", "k102", "male"),
    SubjectSpec("SynthKIT", "k103", "female"),
    SubjectSpec("SynthBML", "rub01", "male"),
    SubjectSpec("SynthBML", "rub02", "female"),
    SubjectSpec("SynthHDM", "h01", "female"),
    SubjectSpec("SynthHDM", "h02", "male"),
)
_SMPLX_SUBJECT = SubjectSpec("SynthMoSh", "x01", "neutral")
_FPS_CHOICES = (60.0, 100.0, 120.0)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed-equivalent writer with fixed zip timestamps (byte-reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
    ):
        for key, arr in arrays.items():
            buf = BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _subject_betas(rng: np.random.Generator) -> np.ndarray:
    """16 shape coefficients ~ N(0, 1), stature kept within +/-2 sd."""
    betas = rng.normal(0.0, 1.0, 16)
    betas[0] = np.clip(betas[0], -2.0, 2.0)
    return betas


def _clip(kind: str, rng: np.random.Generator, fps: float, small: bool, style: Style) -> Track:
    """One clip of ``kind`` performed by a subject of ``style`` (the builder, then the layers)."""
    builder, (lo, hi) = MOTIONS[kind]
    dur = rng.uniform(1.2, 1.6) if small else rng.uniform(lo, hi)
    n = int(round(dur * fps))
    t = np.arange(n) / fps
    amp = rng.uniform(0.85, 1.1)
    tr = _base_track(warped_clock(t, rng, style.tempo), rng)
    stand = copy.deepcopy(tr)
    builder(tr, rng, amp)
    tr.t = stand.t = t
    _vary(tr, stand, rng, style)
    _secondary(tr, stand)
    _posture(tr, style)
    _texture(tr, rng, style)
    return tr


def _motion_arrays(
    kind: str, rng: np.random.Generator, skeleton: tuple, fps: float, small: bool, style: Style
) -> tuple[np.ndarray, np.ndarray]:
    tr = _clip(kind, rng, fps, small, style)
    start = rng.uniform(-0.5, 0.5, 2)
    heading0 = rng.uniform(-np.pi, np.pi)
    return track_to_amass(tr, skeleton, start, heading0)


def _dmpls(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    t = np.arange(n)[:, None] / fps
    f = rng.uniform(0.5, 2.0, 8)
    return 0.3 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, 8)) * rng.uniform(0.2, 1, 8)


def generate_archive(
    out_dir: Path, seed: int = 0, small: bool = False, body_models: Path | None = None
) -> list[Path]:
    """Write the AMASS-format archive under ``out_dir``; return the sequence files written.

    Default: 4 SMPL+H subsets, 10 subjects (both genders), every subject performing 8 of the
    ``MOTIONS`` kinds (each kind at least 3 times overall), about 6 minutes of motion at
    60/100/120 fps, plus one SMPL-X subset (``*_stageii.npz``). ``small`` writes 1 subject per
    subset with 2 clips of ~1.4 s (for tests).

    Feet are planted with the shaped skeleton of ``body_models`` (a body-model folder holding
    ``smplh/<gender>/model.npz``), by default :func:`default_body_models`.
    """
    out_dir = Path(out_dir)
    body_models = default_body_models(out_dir) if body_models is None else Path(body_models)
    kinds = list(MOTIONS)
    subjects = _SUBJECTS[:7:3] if small else _SUBJECTS
    per_subject = 2 if small else 8
    written: list[Path] = []
    bar = tqdm(total=len(subjects) * per_subject, desc="motion archive", unit="clip",
               disable=small, leave=False)  # fmt: skip
    for si, subj in enumerate(subjects):
        srng = np.random.default_rng([seed, 1, si])
        betas = _subject_betas(srng)
        skeleton = body_skeleton(body_models, subj.gender, betas)
        style = subject_style(srng)
        sdir = out_dir / subj.subset / subj.name
        _write_npz(sdir / "shape.npz", {"gender": np.array(subj.gender), "betas": betas})
        order = [kinds[(si * 5 + k) % len(kinds)] for k in range(per_subject)]
        for k, kind in enumerate(order):
            rng = np.random.default_rng([seed, 2, si, k])
            fps = float(_FPS_CHOICES[int(rng.integers(len(_FPS_CHOICES)))])
            poses, trans = _motion_arrays(kind, rng, skeleton, fps, small, style)
            path = sdir / f"{kind}_{k + 1:02d}_poses.npz"
            _write_npz(
                path,
                {
                    "trans": trans,
                    "gender": np.array(subj.gender),
                    "mocap_framerate": np.array(fps),
                    "betas": betas,
                    "dmpls": _dmpls(rng, poses.shape[0], fps),
                    "poses": poses,
                },
            )
            written.append(path)
            bar.update()
    bar.close()
    written += _write_smplx_subject(out_dir, seed, small, body_models)
    _remove_stale(out_dir, written)
    return written


def _remove_stale(out_dir: Path, written: list[Path]) -> None:
    """Delete npz files of an earlier run (other seed/size) from the generator's own subsets."""
    keep = {p.resolve() for p in written}
    keep |= {(p.parent / n).resolve() for p in written for n in ("shape.npz", "neutral_stagei.npz")}
    for subset in {s.subset for s in (*_SUBJECTS, _SMPLX_SUBJECT)}:
        sdir = out_dir / subset
        if not sdir.is_dir():
            continue
        for f in sdir.rglob("*.npz"):
            if f.resolve() not in keep:
                f.unlink()
        for d in sorted(sdir.rglob("*"), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


def _write_smplx_subject(out_dir: Path, seed: int, small: bool, body_models: Path) -> list[Path]:
    """SMPL-X layout (``*_stageii.npz``) as AMASS's SMPL-X release ships it."""
    subj = _SMPLX_SUBJECT
    srng = np.random.default_rng([seed, 3])
    betas = _subject_betas(srng)
    skeleton = body_skeleton(body_models, subj.gender, betas)  # SMPL+H stands in for SMPL-X
    style = subject_style(srng)
    sdir = out_dir / subj.subset / subj.name
    _write_npz(sdir / "neutral_stagei.npz", {"gender": np.array(subj.gender), "betas": betas})
    written = []
    for k, kind in enumerate(("walk", "wave") if not small else ("wave",)):
        rng = np.random.default_rng([seed, 4, k])
        fps = 120.0
        poses, trans = _motion_arrays(kind, rng, skeleton, fps, small, style)
        n = poses.shape[0]
        t = np.arange(n) / fps
        jaw = np.zeros((n, 3))
        jaw[:, 0] = 0.08 + 0.06 * np.sin(2 * np.pi * 0.7 * t)  # mouth opening (about x)
        eye = np.zeros((n, 6))
        gaze = 0.15 * np.sin(2 * np.pi * 0.3 * t)
        eye[:, 1] = eye[:, 4] = gaze
        full = np.concatenate([poses[:, :66], jaw, eye, poses[:, 66:]], axis=1)  # (N, 165)
        path = sdir / f"{kind}_{k + 1:02d}_stageii.npz"
        _write_npz(
            path,
            {
                "gender": np.array(subj.gender),
                "surface_model_type": np.array("smplx"),
                "mocap_frame_rate": np.array(fps),
                "mocap_time_length": np.array(n / fps),
                "trans": trans,
                "poses": full,
                "betas": betas,
                "num_betas": np.array(16),
                "root_orient": poses[:, :3],
                "pose_body": poses[:, 3:66],
                "pose_hand": poses[:, 66:],
                "pose_jaw": jaw,
                "pose_eye": eye,
            },
        )
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.synth.motion --out DIR [--seed S] [--small] [--png PNG]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m pipeline.synth.motion", description=main.__doc__)
    ap.add_argument("--out", type=Path, required=True, help="archive root to write (or read)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--body-models", type=Path, default=None, help="plant feet with these")
    ap.add_argument("--png", type=Path, default=None, help="only draw the stick-figure sheet")
    args = ap.parse_args(argv)
    if args.png is None or not any(args.out.rglob("*_poses.npz")):
        files = generate_archive(args.out, args.seed, args.small, args.body_models)
        print(f"wrote {len(files)} sequences under {args.out}")
    if args.png is not None:
        from pipeline.synth.preview import plot_motions

        print(f"wrote {plot_motions(args.out, args.png, body_models=args.body_models)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
