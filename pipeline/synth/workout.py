"""Workout kind ``workout``: a calisthenics warm-up, several standard exercises in a row, as in
the exercise and warm-up takes of AMASS's CMU, KIT and BMLmovi captures.

The exercises hold the body in configurations no other train kind holds: hands before the chest
or at the head with the elbows bent over soft or deep knees (a standing twist, a sumo squat with
clasped hands, an overhead press from the rack), the arms raised sideways or overhead over a
wide stance (lateral raises, a wide side bend), and quick two-footed pogo hops with a held arm
carriage. They are other choreographies than the held-out kinds of :mod:`pipeline.synth.kinds`
(no punches, no rope, no jumping jacks); peak angles stay inside normal adult range of motion
(see :mod:`pipeline.synth.everyday`) and ``JOINT_LIMITS``.

Each take strings exercises picked by ``rng`` while its 5.5-8 s last (2, at times 1 or 3);
each eases into its stance, repeats its movement 2-4 times and eases out (smooth, C2).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.synth.everyday import _pulse_train, add_both, arm_abduct, trunk
from pipeline.synth.joint_names import JOINT_INDEX as _J
from pipeline.synth.moves import Track, _pulse

_SIDES = (("left", 1.0), ("right", -1.0))
#: Seconds each exercise takes to ease into its stance, and out of it.
_EASE = 0.45


def _stance(tr: Track, env: np.ndarray, wide: float, knees: float) -> None:
    """Feet apart (both hips abducted ``wide`` rad, soles kept flat) on knees bent ``knees``."""
    e = tr.euler
    add_both(e, "hip", 2, wide * env)
    add_both(e, "ankle", 2, -0.5 * wide * env)
    add_both(e, "knee", 0, knees * env)
    add_both(e, "hip", 0, -0.5 * knees * env)
    add_both(e, "ankle", 0, -0.5 * knees * env)


def _hands_before_chest(e: np.ndarray, env: np.ndarray, rng: np.random.Generator) -> None:
    """Upper arms forward and a little out, elbows bent ~95-105 deg: the hands before the chest
    or the chin (clasped, or fists)."""
    flex, out, bend = rng.uniform(0.5, 0.9), rng.uniform(0.2, 0.45), rng.uniform(1.6, 1.85)
    for side, sgn in _SIDES:
        j = _J[f"{side}_shoulder"]
        e[:, j, 0] += -flex * env
        e[:, j, 2] = e[:, j, 2] * (1 - env) + sgn * (-1.25 + out) * env
        e[:, j, 1] += -sgn * 0.15 * env  # elbows a little in front of the body
        jel = _J[f"{side}_elbow"]
        e[:, jel, 1] = e[:, jel, 1] * (1 - env) - sgn * bend * env


def _twist(tr: Track, env: np.ndarray, rep: np.ndarray, rng: np.random.Generator) -> None:
    """Standing trunk twists (~35 deg each way) on a wide stance and soft knees, hands before
    the chest; the head follows."""
    _stance(tr, env, rng.uniform(0.1, 0.3), rng.uniform(0.2, 0.5))
    _hands_before_chest(tr.euler, env, rng)
    turn = rng.uniform(0.45, 0.65) * np.sin(np.pi * rep) * env  # rep: 0..2 -> one way, the other
    trunk(tr, 1, turn, pelvis=0.25)
    tr.euler[:, _J["neck"], 1] += 0.3 * turn


def _sumo_squat(tr: Track, env: np.ndarray, rep: np.ndarray, rng: np.random.Generator) -> None:
    """Wide (sumo) squats, toes out, to thighs ~level, hands clasped before the chest."""
    wide = rng.uniform(0.3, 0.45)
    _stance(tr, env, wide, 0.15)
    e = tr.euler
    add_both(e, "hip", 1, 0.35 * env)  # toes turned out (as the posture's toe-out)
    d = rng.uniform(0.6, 1.0) * np.sin(0.5 * np.pi * rep) ** 2 * env
    tr.tilt[:, 0] += 0.35 * d
    add_both(e, "hip", 0, -1.35 * d)
    add_both(e, "knee", 0, 1.5 * d)
    add_both(e, "ankle", 0, -0.6 * d)
    _hands_before_chest(e, env, rng)


def _press(tr: Track, env: np.ndarray, rep: np.ndarray, rng: np.random.Generator) -> None:
    """Overhead presses from the rack (upper arms out, elbows bent ~100 deg, hands by the head)
    to straight arms overhead; sometimes from a squat (a thruster)."""
    e = tr.euler
    _stance(tr, env, rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.25))
    up = np.sin(0.5 * np.pi * rep) ** 2 * env  # 0 in the rack, 1 overhead
    rack = env - up
    for side, sgn in _SIDES:
        j = _J[f"{side}_shoulder"]
        e[:, j, 2] = e[:, j, 2] * (1 - env) + sgn * (-0.35 * rack + 1.3 * up)
        e[:, j, 0] += -0.35 * rack
        jel = _J[f"{side}_elbow"]
        e[:, jel, 1] = e[:, jel, 1] * (1 - env) - sgn * (1.75 * rack + 0.15 * up)
    if rng.random() < 0.4:  # thruster: squat in the rack, drive up into the press
        d = 0.8 * rack
        tr.tilt[:, 0] += 0.35 * d
        add_both(e, "hip", 0, -1.2 * d)
        add_both(e, "knee", 0, 1.5 * d)
        add_both(e, "ankle", 0, -0.55 * d)


def _lateral_raise(tr: Track, env: np.ndarray, rep: np.ndarray, rng: np.random.Generator) -> None:
    """Arms raised sideways to shoulder height, or up into a 'Y' overhead, over a stance of
    any width."""
    _stance(tr, env, rng.uniform(0.0, 0.35), rng.uniform(0.0, 0.3))
    top = rng.uniform(0.5, 1.0)
    up = top * np.sin(0.5 * np.pi * rep) ** 2 * env
    for side, _ in _SIDES:
        arm_abduct(tr.euler, side, up)
    add_both(tr.euler, "shoulder", 0, -0.3 * up * (top > 0.75))  # a 'Y' opens forward


def _wide_side_bend(tr: Track, env: np.ndarray, rep: np.ndarray, rng: np.random.Generator) -> None:
    """Side bends (~30 deg) over a wide stance, the top arm overhead; the other hand on the
    hip, or both arms overhead."""
    e = tr.euler
    _stance(tr, env, rng.uniform(0.25, 0.4), rng.uniform(0.0, 0.15))
    both = rng.random() < 0.4
    bend = rng.uniform(0.4, 0.6) * np.sin(np.pi * rep) * env  # to the right (>0), then left
    for side, sgn in _SIDES:
        over = np.clip(sgn * bend / 0.3, 0.0, 1.0)  # this side's arm goes up as it bends away
        arm_abduct(e, side, np.maximum(over, env * both) * 0.95)
        if not both:
            hip = env * (1 - over)  # hand on the hip
            e[:, _J[f"{side}_elbow"], 1] -= sgn * 1.2 * hip
            e[:, _J[f"{side}_shoulder"], 2] += sgn * 0.5 * hip
    trunk(tr, 2, -bend, pelvis=0.15)


def _pogo(tr: Track, env: np.ndarray, rep: np.ndarray, rng: np.random.Generator) -> None:
    """Pogo hops: quick two-footed hops in place off the ankles (2.2-2.8 a second; the ankle
    snaps in ~70 ms, as in hopping), knees nearly straight, the arms held bent at the sides."""
    e, t = tr.euler, tr.t
    period = 1.0 / rng.uniform(2.2, 2.8)
    push = _pulse_train(t, period, 0.0, 0.18, 0.1, 0.22) * env  # take-off, pointed in flight
    air = _pulse_train(t, period, 0.12, 0.15, 0.1, 0.2) * env
    add_both(e, "ankle", 0, 0.55 * push - 0.15 * env)
    add_both(e, "knee", 0, 0.25 * (env - push) + 0.05 * env)
    add_both(e, "hip", 0, -0.15 * (env - push))
    for side, sgn in _SIDES:
        e[:, _J[f"{side}_elbow"], 1] -= sgn * rng.uniform(0.9, 1.5) * env
        e[:, _J[f"{side}_shoulder"], 2] += sgn * rng.uniform(0.1, 0.5) * env
    tr.lift[:] += 0.05 * air
    tr.lock = False  # feet leave the floor


_EXERCISES: tuple[Callable, ...] = (
    _twist,
    _sumo_squat,
    _press,
    _lateral_raise,
    _wide_side_bend,
    _pogo,
)


def _workout(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Exercises in a row while the take lasts, each eased into, repeated 2-4 times and eased
    out of."""
    t = tr.t
    order = rng.permutation(len(_EXERCISES))
    start = 0.2
    for i in order:
        span = rng.uniform(2.2, 3.2)
        if start + span > t[-1] - 0.1:
            break
        env = _pulse(t, start, _EASE, span - 2 * _EASE, _EASE) * min(amp, 1.0)
        rep = np.clip((t - start) / span, 0.0, 1.0) * 2 * rng.integers(2, 5)  # 2 a repetition
        _EXERCISES[i](tr, env, rep, rng)
        start += span + rng.uniform(0.0, 0.3)


#: Motion kinds: name -> (builder, (min, max) duration in seconds).
MOTIONS: dict[str, tuple[Callable, tuple[float, float]]] = {"workout": (_workout, (5.5, 8.0))}
