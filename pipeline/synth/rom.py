"""Range-of-motion kind ``rom``, after AMASS's PosePrior / MPI_Limits captures: the subject
moves limbs and trunk through their published ranges, one movement after another.

Peak angles follow normal adult range of motion (AAOS, "Joint motion: method of measuring and
recording", 1965/1994; Soucie et al. 2011, "Range of motion measurements: reference values and a
database for comparison studies", Haemophilia 17:500-507): shoulder flexion ~170 deg and
abduction ~170 deg, horizontal adduction ~130, extension ~50; elbow flexion ~145; hip flexion
~120 (knee bent) and ~80 (straight leg, hamstrings), abduction ~45, extension ~20-30; knee
flexion ~140; thoracolumbar flexion ~80, extension ~25, side bend ~35, rotation ~45; cervical
flexion ~45, extension ~45, rotation ~80. ``JOINT_LIMITS`` (applied last) caps what the
subject's gains overshoot.

Each clip strings several movements picked by ``rng`` (the first always moves the arms), each a
smooth (C2) out-and-back pulse; one leg stands while the other moves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.synth.everyday import add_both, arm_abduct, arm_flex, leg, trunk
from pipeline.synth.joint_names import JOINT_INDEX as _J
from pipeline.synth.joint_names import pair as _pair
from pipeline.synth.moves import Track, _pulse

_SIDES = ("left", "right")


def _arms(rng: np.random.Generator) -> tuple[str, ...]:
    """Both arms together, or one of them."""
    return _SIDES if rng.random() < 0.6 else (_SIDES[int(rng.integers(2))],)


def _shoulder_flex(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """Arms forward and up overhead (~170 deg); the elbow bends on the way (hand past the
    shoulder) and straightens overhead."""
    e = tr.euler
    bend = rng.uniform(0.0, 1.2)
    for side in _arms(rng):
        sgn = 1.0 if side == "left" else -1.0
        arm_flex(e, side, 1.15 * p)  # to the joint limit
        e[:, _J[f"{side}_elbow"], 1] -= sgn * bend * np.sin(np.pi * p) ** 2
    trunk(tr, 0, -0.12 * p, pelvis=0.2)  # the back arches a little under full flexion


def _shoulder_abd(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """Arms out sideways and up overhead (~170 deg), together, or one up while the other
    stays down."""
    e = tr.euler
    for side in _arms(rng):
        arm_abduct(e, side, 1.1 * p)  # to the joint limit


def _shoulder_horizontal(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """Arms held forward at shoulder height, then swung across the chest (horizontal adduction)
    and open wide behind the frontal plane (horizontal abduction)."""
    e = tr.euler
    up = np.clip(3 * p, 0.0, 1.0)
    swing = np.sin(np.pi * p) * np.cos(np.pi * p)  # across, then open
    for side in _arms(rng):
        sgn = 1.0 if side == "left" else -1.0
        j = _J[f"{side}_shoulder"]
        e[:, j, 2] = e[:, j, 2] * (1 - up)
        e[:, j, 1] += -sgn * (0.9 * up * (1 - p) + 1.2 * swing - 0.6 * p)
        e[:, _J[f"{side}_collar"], 1] += -sgn * 0.3 * np.clip(swing, 0.0, None)
        e[:, _J[f"{side}_elbow"], 1] *= 1 - 0.8 * up


def _hip_flex(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """One knee pulled to the chest (hip ~120, knee ~140 deg), or a straight-leg raise (~80)."""
    e = tr.euler
    side = _SIDES[int(rng.integers(2))]
    if rng.random() < 0.6:
        leg(e, tr.tilt[:, 0], side, 1.95 * p, 2.3 * p, 0.3 * p)
        add_both(e, "shoulder", 0, -0.9 * p)  # hands to the knee
        add_both(e, "elbow", 1, -1.2 * p)
    else:
        leg(e, tr.tilt[:, 0], side, 1.3 * p, 0.1 * p, 0.2 * p)
        trunk(tr, 0, -0.1 * p)
    other = "right" if side == "left" else "left"
    e[:, _J[f"{other}_knee"], 0] += 0.1 * p  # the standing knee softens


def _hip_abd(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """One leg raised sideways (~45 deg), the trunk leaning a little over the standing leg."""
    e = tr.euler
    side = _SIDES[int(rng.integers(2))]
    sgn = 1.0 if side == "left" else -1.0
    e[:, _J[f"{side}_hip"], 2] += sgn * 0.8 * p
    e[:, _J[f"{side}_knee"], 0] += 0.05 * p
    trunk(tr, 2, -sgn * 0.15 * p, pelvis=0.0)
    add_both(e, "shoulder", 2, 0.6 * p)  # arms out for balance


def _hip_ext(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """One leg swung back (hip extension ~30 deg, knee straight or bent), trunk tipping forward."""
    e = tr.euler
    side = _SIDES[int(rng.integers(2))]
    tr.tilt[:, 0] += 0.25 * p
    leg(e, tr.tilt[:, 0], side, -0.55 * p, rng.uniform(0.05, 1.2) * p, 0.3 * p)
    other = "right" if side == "left" else "left"
    leg(e, tr.tilt[:, 0], other, 0.0 * p, 0.1 * p)


def _trunk_flex(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """Forward bend towards the toes (hips ~70 deg, spine ~50 deg), knees straight, arms hang."""
    e = tr.euler
    trunk(tr, 0, 1.9 * p * rng.uniform(0.85, 1.0), pelvis=0.6)
    add_both(e, "knee", 0, 0.08 * p)
    add_both(e, "shoulder", 0, -1.2 * p)
    e[:, _J["neck"], 0] += 0.2 * p


def _trunk_ext(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """Backward arch (~25 deg), hands on the hips or arms up."""
    e = tr.euler
    trunk(tr, 0, -0.55 * p, pelvis=0.2)
    add_both(e, "knee", 0, 0.15 * p)
    if rng.random() < 0.5:
        for side in _SIDES:
            arm_flex(e, side, 0.9 * p)
    else:
        add_both(e, "elbow", 1, -1.4 * p)
        add_both(e, "shoulder", 0, 0.4 * p)


def _side_bend(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """Side bend to one side, then the other (~35 deg), a hand sliding down the thigh."""
    e = tr.euler
    sgn = rng.choice([-1.0, 1.0])
    bend = sgn * 1.2 * np.sin(np.pi * p) * np.cos(np.pi * p)  # one side, then the other
    trunk(tr, 2, bend, pelvis=0.1)
    e[:, _pair("shoulder"), 2] += (-0.3 * bend)[:, None]


def _twist(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """Trunk rotation to one side and the other (~45 deg), arms folded or held out."""
    e = tr.euler
    sgn = rng.choice([-1.0, 1.0])
    turn = sgn * 1.6 * np.sin(np.pi * p) * np.cos(np.pi * p)
    trunk(tr, 1, turn, pelvis=0.15)
    e[:, _J["neck"], 1] += 0.3 * turn
    up = np.clip(3 * np.minimum(p, 1.0), 0.0, 1.0) * (rng.random() < 0.5)
    for side in _SIDES:
        arm_abduct(e, side, 0.5 * up)


def _neck(tr: Track, p: np.ndarray, rng: np.random.Generator) -> None:
    """Head nods (flexion / extension ~45 deg) or turns (rotation ~80 deg) to both sides."""
    e = tr.euler
    wave = np.sin(np.pi * p) * np.cos(np.pi * p) * 2
    axis = 0 if rng.random() < 0.5 else 1
    if axis == 0:
        e[:, _J["neck"], 0] += 0.55 * wave
        e[:, _J["head"], 0] += 0.45 * wave
    else:
        e[:, _J["neck"], 1] += 0.8 * wave
        e[:, _J["head"], 1] += 0.6 * wave


_ARM_MOVES = (_shoulder_flex, _shoulder_abd, _shoulder_horizontal)
_OTHER_MOVES = (_hip_flex, _hip_abd, _hip_ext, _trunk_flex, _trunk_ext, _side_bend, _twist, _neck)


def _rom(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Several range-of-motion movements in a row, the first raising the arms overhead."""
    t = tr.t
    first = _ARM_MOVES[int(rng.integers(2))]  # flexion or abduction overhead
    rest = [m for m in (*_ARM_MOVES, *_OTHER_MOVES) if m is not first]
    order = [first, *(rest[i] for i in rng.permutation(len(rest)))]
    start = 0.2
    for move in order:
        span = rng.uniform(1.6, 2.4)
        if start + span > t[-1] - 0.1:
            break
        rise = rng.uniform(0.38, 0.45) * span
        p = _pulse(t, start, rise, span - 2 * rise, rise) * amp
        move(tr, p, rng)
        start += span + rng.uniform(0.0, 0.3)


#: Motion kinds: name -> (builder, (min, max) duration in seconds).
MOTIONS: dict[str, tuple[Callable, tuple[float, float]]] = {"rom": (_rom, (5.0, 7.5))}
