"""The motion library: one choreography per motion kind and the :data:`MOTIONS` table.

Each builder shapes a relaxed standing :class:`Track` (per-joint Euler angles, ``R = Rx @ Rz @
Ry`` in the parent's rest frame, built from smooth periodic curves and smoothstep keyframes) into
one nominal performance of its kind; :mod:`pipeline.synth.style` makes it one subject's, one
take's, and :mod:`pipeline.synth.archive` turns it into AMASS arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from pipeline.synth.joint_names import JOINT_INDEX as _J
from pipeline.synth.joint_names import pair as _pair

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
    vary: float = 1.0  # share of the subject's drifting gains this motion takes (floor poses
    # rest on the body's geometry: scaled angles would sink the pelvis or back into the floor)


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


def base_track(t: np.ndarray, rng: np.random.Generator) -> Track:
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


# Each builder shapes a relaxed standing Track (``base_track``) into one kind of motion.


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
    _both(e, "elbow", 1, -1.8)  # guard at ~105 deg: a subject's larger gains stay off the limit
    punch = {"left": np.zeros_like(t), "right": np.zeros_like(t)}
    free = {"left": 0.0, "right": 0.0}  # when each arm is back from its last punch
    start = 0.3
    while start < t[-1]:
        side = "left" if rng.random() < 0.5 else "right"
        if free[side] > start:  # that arm is still out: the other one punches (a combination)
            side = "right" if side == "left" else "left"
        start = max(start, free[side])  # never two punches of one arm summed (a clipped kink)
        punch[side] += _pulse(t, start, 0.15, 0.05, 0.25) * rng.uniform(0.7, 1.0)
        free[side] = start + 0.45
        start += rng.uniform(0.35, 0.75)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        p = punch[side] * amp
        e[:, _J[f"{side}_shoulder"], 0] -= 0.7 * p
        e[:, _J[f"{side}_shoulder"], 2] += sgn * 0.4 * p
        e[:, _J[f"{side}_elbow"], 1] += sgn * 1.6 * p
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
