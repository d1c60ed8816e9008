"""Everyday and athletic motion kinds: arms overhead, reaching across, kneeling, sitting on and
getting up from the floor, lifting to a shelf, climbing, swings, side lunges, arm circles,
running in place with high knees, one-leg hops.

Builders follow :mod:`pipeline.synth.moves` (``builder(track, rng, amp)`` on a relaxed standing
:class:`~pipeline.synth.moves.Track`); each draws its own side, depth, reps, tempo and
asymmetry from ``rng`` so two takes of a kind differ. Peak angles stay inside published
normal range of motion (AAOS, "Joint motion: method of measuring and recording", 1965/1994;
Soucie et al. 2011, Haemophilia 17:500-507): shoulder flexion / abduction 170-180 deg, hip
flexion 120-130, knee flexion 135-145, elbow flexion 145, ankle plantar-flexion 40-50 and
dorsiflexion 20, thoracolumbar flexion 80, extension 25, side bend 35, rotation 45; and inside
``JOINT_LIMITS`` (applied last). Two limits are narrower than published and were left so: the
shoulder's horizontal adduction (74 deg from the T-pose against ~130: a reach across the body
adds the shoulder blade and the trunk) and toe extension (34 deg against ~70).

Poses are written in body terms (:func:`leg`): the thigh's angle from the vertical in the world
(pelvis tilt taken out), the knee's flexion and the sole's pitch, so feet stay flat on the floor
while the pelvis tilts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.synth.joint_names import JOINT_INDEX as _J
from pipeline.synth.joint_names import pair as _pair
from pipeline.synth.moves import Track, _both, _pulse, _smoothstep

_SPINE = ("spine1", "spine2", "spine3")


def keys(t: np.ndarray, times, values) -> np.ndarray:
    """Curve through ``values`` at ``times`` (s), eased between keys with smoothstep (C2)."""
    out = np.full_like(t, float(values[0]))
    for k in range(len(times) - 1):
        span = max(times[k + 1] - times[k], 1e-6)
        out += (values[k + 1] - values[k]) * _smoothstep((t - times[k]) / span)
    return out


def sequence(t: np.ndarray, poses: list[tuple[float, dict]], rest: dict) -> dict:
    """Channel curves through key poses ``[(time, {channel: value}), ...]``; a channel a pose
    does not name keeps its previous value (``rest`` before the first)."""
    names = set(rest)
    for _, p in poses:
        names |= set(p)
    cur = dict(rest)
    table: dict[str, list[float]] = {n: [] for n in names}
    for _, p in poses:
        cur.update(p)
        for n in names:
            table[n].append(cur.get(n, 0.0))
    times = [tk for tk, _ in poses]
    return {n: keys(t, times, v) for n, v in table.items()}


def add_both(e: np.ndarray, name: str, axis: int, left) -> None:
    """Add ``left`` to Euler ``axis`` of ``left_<name>`` and its mirror image to the right."""
    e[:, _J[f"left_{name}"], axis] += left
    e[:, _J[f"right_{name}"], axis] += left if axis == 0 else -left


def leg(e: np.ndarray, tau, side: str, thigh, knee, sole=0.0) -> None:
    """Sagittal leg pose: thigh ``thigh`` rad forward of the world vertical (the pelvis tilt
    ``tau`` taken out), knee flexion ``knee``, sole pitched ``sole`` (toes down +) from flat."""
    e[:, _J[f"{side}_hip"], 0] = -(thigh + tau)
    e[:, _J[f"{side}_knee"], 0] = knee
    e[:, _J[f"{side}_ankle"], 0] = thigh - knee + sole


def arm_flex(e: np.ndarray, side: str, u) -> None:
    """Raise the arm forward in the sagittal plane, ``u`` 0 (hanging) to 1 (~170 deg flexion,
    overhead): x and y share the swing, z stays near -80 deg so the decomposition stays far from
    gimbal lock; the elbow straightens on the way up."""
    sgn = 1.0 if side == "left" else -1.0
    j = _J[f"{side}_shoulder"]
    e[:, j, 0] += -1.75 * u
    e[:, j, 1] += -sgn * 1.2 * u
    e[:, j, 2] = e[:, j, 2] * (1 - u) - sgn * 1.35 * u
    e[:, _J[f"{side}_elbow"], 1] *= 1 - 0.7 * np.clip(u, 0.0, 1.0)


def arm_abduct(e: np.ndarray, side: str, u) -> None:
    """Raise the arm sideways in the frontal plane, ``u`` 0 (hanging) to 1 (~170 deg, overhead)."""
    sgn = 1.0 if side == "left" else -1.0
    j = _J[f"{side}_shoulder"]
    e[:, j, 2] = e[:, j, 2] * (1 - u) + sgn * 1.45 * u
    e[:, _J[f"{side}_elbow"], 1] *= 1 - 0.7 * np.clip(u, 0.0, 1.0)


def trunk(tr: Track, axis: int, total, pelvis: float = 0.3) -> None:
    """Bend (x), twist (y) or side-bend (z) the trunk by ``total`` rad: ``pelvis`` of it at the
    pelvis (the hips take it back so the legs stay put), the rest over the three spine joints."""
    e = tr.euler
    tr.tilt[:, axis] += pelvis * total
    e[:, _pair("hip"), axis] -= (pelvis * total)[:, None]
    for s in _SPINE:
        e[:, _J[s], axis] += (1 - pelvis) * total / 3


def _side(rng: np.random.Generator, p_right: float = 0.6) -> tuple[str, str, float]:
    side = "right" if rng.random() < p_right else "left"
    return side, ("left" if side == "right" else "right"), (1.0 if side == "left" else -1.0)


def _stretch(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Arms up overhead (forward or sideways), then a few stretches in random order: side bends
    (35 deg), twists (45 deg), a back arch (25 deg), a reach up on the toes; arms come down."""
    e, t = tr.euler, tr.t
    dur = t[-1]
    up = _pulse(t, 0.2, rng.uniform(0.6, 0.9), dur - 2.0, rng.uniform(0.6, 0.9)) * amp
    raise_arm = arm_flex if rng.random() < 0.5 else arm_abduct
    for side in ("left", "right"):
        raise_arm(e, side, np.clip(up * rng.uniform(0.9, 1.0), 0.0, 1.0))
    moves = list(rng.permutation(["side", "twist", "back", "toes"]))[: int(rng.integers(2, 5))]
    start, span = 1.1, (dur - 2.4) / len(moves)
    for m in moves:
        sgn = rng.choice([-1.0, 1.0])
        p = _pulse(t, start, 0.35 * span, 0.15 * span, 0.35 * span) * rng.uniform(0.8, 1.0)
        if m == "side":
            trunk(tr, 2, sgn * 0.6 * p, pelvis=0.15)
        elif m == "twist":
            trunk(tr, 1, sgn * 0.75 * p, pelvis=0.2)
        elif m == "back":
            trunk(tr, 0, -0.4 * p, pelvis=0.25)
            e[:, _J["neck"], 0] -= 0.3 * p
        else:
            add_both(e, "ankle", 0, 0.55 * p)  # heels up
            add_both(e, "knee", 0, -0.05 * p)
            e[:, _pair("shoulder"), 0] -= (0.15 * p)[:, None]
        start += span


def _reach_across(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Reach across the body to the far side, low, mid or high: horizontal adduction to the
    limit, the shoulder blade protracts, the trunk turns (up to ~40 deg) and the weight shifts
    to the far leg; hands alternate or one hand repeats."""
    e, t = tr.euler, tr.t
    period = rng.uniform(2.0, 2.8)
    alternate = rng.random() < 0.6
    side, _, _ = _side(rng, 0.5)
    start, k = 0.25, 0
    while start + 1.2 < t[-1]:
        s = ("left" if side == "right" else "right") if alternate and k % 2 else side
        sgn = 1.0 if s == "left" else -1.0
        rise = 0.35 * period
        r = _pulse(t, start, rise, rng.uniform(0.1, 0.3) * period, rise) * amp
        height = rng.uniform(-0.7, 0.6)  # shoulder elevation of the reach: knee to head height
        j = _J[f"{s}_shoulder"]
        e[:, j, 1] += -sgn * 1.3 * r
        e[:, j, 2] = e[:, j, 2] * (1 - r) + sgn * height * r
        e[:, j, 0] += -0.3 * r * (height < 0)
        e[:, _J[f"{s}_elbow"], 1] *= 1 - 0.75 * r
        e[:, _J[f"{s}_collar"], 1] += -sgn * 0.35 * r
        trunk(tr, 1, -sgn * 0.7 * r, pelvis=0.3)
        trunk(tr, 0, (0.15 + 0.5 * max(-height, 0.0)) * r, pelvis=0.6)
        tr.tilt[:, 2] += -sgn * 0.05 * r
        e[:, _pair("hip"), 2] += (sgn * 0.05 * r)[:, None]
        add_both(e, "knee", 0, 0.25 * max(-height, 0.0) * r)
        start += period
        k += 1


#: The style layer's standing posture bends the knees ~0.18 rad (``subject_style``); kneeling,
#: sitting or lying on the floor the legs are not loaded, so floor poses take that much back.
_SOFT_KNEES = 0.18
#: Kneel: thigh / knee / sole of the kneeling leg with the shin on the floor, toes tucked.
_KNEE_DOWN = {"thigh": 0.0, "knee": 1.8, "sole": 0.5}


def _kneel(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Step back and go down on one knee (half kneel, front thigh level), sometimes bring the
    other knee down too (tall kneel) and sit back on the heels; then back up to standing."""
    e, t = tr.euler, tr.t
    dur = t[-1]
    front, back, _ = _side(rng, 0.6)
    both = rng.random() < 0.5
    heels = both and rng.random() < 0.5
    k = _KNEE_DOWN
    stand = {"tau": 0.0, "ft": 0.0, "fk": 0.0, "fs": 0.0, "bt": 0.0, "bk": 0.0, "bs": 0.0,
             "fsoft": 0.0, "bsoft": 0.0}  # fmt: skip
    half = {"tau": 0.1, "ft": 1.6, "fk": 2.05, "fs": 0.0, "fsoft": 0.0,
            "bt": k["thigh"], "bk": k["knee"], "bs": k["sole"], "bsoft": 1.0}  # fmt: skip
    poses = [(0.0, {}), (0.15 * dur, {}), (0.4 * dur, half)]
    if both:
        tall = {"tau": 0.05, "ft": k["thigh"], "fk": k["knee"], "fs": k["sole"], "fsoft": 1.0}
        poses += [(0.5 * dur, {"ft": 0.9, "fk": 1.75, "fs": 0.0}), (0.58 * dur, tall)]
        if heels:
            heel = {"ft": 0.45, "bt": 0.45, "fk": 2.05, "bk": 2.05, "fs": 1.1, "bs": 1.1}
            poses += [(0.68 * dur, {"tau": 0.3, **heel}),
                      (0.74 * dur, tall)]  # fmt: skip
        poses += [(0.8 * dur, {"ft": 0.9, "fk": 1.75, "fs": 0.0, "fsoft": 0.0}), (0.86 * dur, half)]
    else:
        poses += [(0.75 * dur, half)]
    poses += [(0.96 * dur, stand)]
    c = sequence(t, poses, stand)
    tr.tilt[:, 0] += c["tau"] * amp
    leg(e, tr.tilt[:, 0], front, c["ft"], c["fk"], c["fs"])
    leg(e, tr.tilt[:, 0], back, c["bt"], c["bk"], c["bs"])
    e[:, _J[f"{front}_knee"], 0] -= _SOFT_KNEES * c["fsoft"]
    e[:, _J[f"{back}_knee"], 0] -= _SOFT_KNEES * c["bsoft"]
    low = np.clip(c["fk"] + c["bk"], 0.0, 2.0) / 2.0
    _both(e, "shoulder", 0, -0.3 * low)  # hands come forward for balance
    for s in _SPINE:
        e[:, _J[s], 0] += 0.05 * low * rng.uniform(0.5, 1.5)
    e[:, _J["neck"], 0] += 0.2 * low
    # the knee rests on its kneecap, a few cm under the joint: lift the planted body by that much
    tr.lift += 0.025 * np.clip(c["bk"] / k["knee"], 0.0, 1.0)
    tr.vary = 0.25


def _sit_floor(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Squat down and sit on the floor (legs out straight or crossed), lean back on the hands or
    forward to the toes, then get back up through the squat."""
    e, t = tr.euler, tr.t
    dur = t[-1]
    crossed = rng.random() < 0.45
    stand = {"tau": 0.0, "th": 0.0, "kn": 0.0, "so": 0.0, "ab": 0.0, "rot": 0.0, "sp": 0.0,
             "arm": 0.0, "el": 0.0}  # fmt: skip
    squat = {"tau": 0.55, "th": 1.25, "kn": 2.3, "so": 0.0, "ab": 0.15, "sp": 0.1,
             "arm": -0.9, "el": 0.0, "soft": 0.0}  # fmt: skip
    if crossed:  # tailor sitting: thighs up and out, turned out, shins crossing in front
        sit = {"tau": -0.5, "th": 2.55, "kn": 2.3, "so": 0.5, "ab": 0.85, "rot": 0.7, "sp": 0.6,
               "arm": -0.3, "el": 0.6, "soft": 1.0}  # fmt: skip
    else:  # long sitting: legs out, heels on the floor
        sit = {"tau": -0.3, "th": 1.55, "kn": 0.1, "so": 0.35, "ab": 0.05, "rot": 0.1, "sp": 0.3,
               "arm": 0.3, "el": 0.1, "soft": 1.0}  # fmt: skip
    lean = dict(sit)  # the legs stay on the floor: only the pelvis, spine and arms move
    if rng.random() < 0.5:  # back on the hands
        lean.update(tau=sit["tau"] - 0.25, sp=0.05, arm=0.6, el=0.0)
    elif crossed:  # forward over the crossed shins (hip flexion is at its limit)
        lean.update(sp=1.0, arm=-1.0, el=0.3)
    else:  # forward to the toes
        lean.update(tau=sit["tau"] + 0.35, sp=0.8, arm=-1.3, el=0.0)
    a = rng.uniform(0.08, 0.12)
    poses = [(0.0, {}), (a * dur, {}), (0.22 * dur, squat), (0.34 * dur, sit),
             (0.46 * dur, sit), (0.56 * dur, lean), (0.64 * dur, lean), (0.72 * dur, sit),
             (0.8 * dur, squat), (0.96 * dur, stand)]  # fmt: skip
    c = sequence(t, poses, stand)
    tr.tilt[:, 0] += c["tau"]
    for side in ("left", "right"):
        leg(e, tr.tilt[:, 0], side, c["th"], c["kn"], c["so"])
    _both(e, "shoulder", 0, c["arm"] * amp)
    add_both(e, "knee", 0, -_SOFT_KNEES * c["soft"])
    _both(e, "hip", 2, c["ab"])
    _both(e, "hip", 1, c["rot"])
    add_both(e, "elbow", 1, -c["el"])
    for s in _SPINE:
        e[:, _J[s], 0] += c["sp"] / 3
    e[:, _J["neck"], 0] += 0.4 * tr.tilt[:, 0] * (tr.tilt[:, 0] < 0)
    tr.vary = 0.2


def _get_up(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Lying on the back (knees up or legs out), curl up to sitting with the arms forward, rock
    forward onto the feet into a deep squat and stand up."""
    e, t = tr.euler, tr.t
    dur = t[-1]
    hook = rng.random() < 0.6
    lie = {"tau": -1.68, "th": 2.4 if hook else 1.55, "kn": 1.8 if hook else 0.1,
           "so": 0.0 if hook else 0.4, "sp": 0.0, "arm": 0.0, "soft": 1.0}  # fmt: skip
    curl = {"tau": -1.0, "th": 2.45, "kn": 1.8, "so": 0.0, "sp": 0.6, "arm": 0.45}
    sit = {"tau": -0.45, "th": 2.5, "kn": 1.95, "so": 0.1, "sp": 0.6, "arm": 0.5}
    squat = {"tau": 0.6, "th": 1.2, "kn": 2.35, "so": 0.0, "sp": 0.3, "arm": 0.45, "soft": 0.0}
    stand = {"tau": 0.0, "th": 0.0, "kn": 0.0, "so": 0.0, "sp": 0.0, "arm": 0.0}
    a = rng.uniform(0.1, 0.2)
    poses = [(0.0, {}), (a * dur, {}), (0.32 * dur, curl), (0.42 * dur, sit), (0.5 * dur, sit),
             (0.7 * dur, squat), (0.93 * dur, stand)]  # fmt: skip
    c = sequence(t, poses, lie)
    tr.tilt[:, 0] += c["tau"]
    lead, other, _ = _side(rng, 0.5)
    for side in ("left", "right"):
        leg(e, tr.tilt[:, 0], side, c["th"], c["kn"], c["so"])
        arm_flex(e, side, np.clip(c["arm"] * (1.0 if side == lead else 0.85) * amp, 0.0, 1.0))
    add_both(e, "knee", 0, -_SOFT_KNEES * c["soft"])
    for s in _SPINE:
        e[:, _J[s], 0] += c["sp"] / 3
    # lying, the head rests on the floor (the style layer keeps it level over the pelvis)
    e[:, _J["neck"], 0] += 0.4 * np.minimum(tr.tilt[:, 0], 0.0) + 0.25 * c["sp"]
    tr.vary = 0.15


def _pick_up(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Lift an object off the floor (squat or stoop), hold it at the chest, put it on a shelf
    overhead (up to ~165 deg shoulder flexion, sometimes on the toes) and lower the arms."""
    e, t = tr.euler, tr.t
    dur = t[-1]
    stoop = rng.random() < 0.4
    stand = {"tau": 0.0, "th": 0.0, "kn": 0.0, "so": 0.0, "sp": 0.0, "arm": 0.0, "el": 0.0}
    if stoop:  # hips back, knees soft, trunk over, arms hang to the floor
        down = {"tau": 1.15, "th": 0.25, "kn": 0.45, "sp": 0.35, "arm": 0.45, "el": 0.0}
    else:
        down = {"tau": 0.55, "th": 1.3, "kn": 2.25, "sp": 0.2, "arm": 0.45, "el": 0.0}
    chest = {"tau": 0.05, "th": 0.05, "kn": 0.1, "sp": 0.0, "arm": 0.25, "el": 1.4}
    shelf = {"arm": rng.uniform(0.85, 0.97), "el": 0.25, "so": 0.35 * (rng.random() < 0.5)}
    a = rng.uniform(0.05, 0.12)
    poses = [(0.0, {}), (a * dur, {}), (0.3 * dur, down), (0.36 * dur, down),
             (0.55 * dur, chest), (0.72 * dur, shelf), (0.8 * dur, shelf),
             (0.96 * dur, stand)]  # fmt: skip
    c = sequence(t, poses, stand)
    tr.tilt[:, 0] += c["tau"] * amp
    for side in ("left", "right"):
        leg(e, tr.tilt[:, 0], side, c["th"], c["kn"], c["so"])
        arm_flex(e, side, np.clip(c["arm"], 0.0, 1.0))
        sgn = 1.0 if side == "left" else -1.0
        e[:, _J[f"{side}_elbow"], 1] -= sgn * c["el"]
        e[:, _J[f"{side}_shoulder"], 1] -= sgn * 0.4 * c["el"] / 1.4  # hands meet in front
    for s in _SPINE:
        e[:, _J[s], 0] += c["sp"] / 3
    tr.vary = 0.5


def _climb(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Ladder (or stairs) climbing in place: high knees in turn, and on a ladder the opposite
    hand reaches up overhead and pulls down as its knee rises."""
    e, t = tr.euler, tr.t
    period = rng.uniform(1.1, 1.6)  # one step of each leg
    ladder = rng.random() < 0.6
    knee_hi = rng.uniform(1.2, 1.6) if ladder else rng.uniform(0.9, 1.2)
    tr.tilt[:, 0] += 0.1 if ladder else 0.05
    ph = rng.uniform(0.0, 1.0)
    contact = []
    for k, side in enumerate(("left", "right")):
        # each foot is off the floor for under half a step cycle: one always stands
        up = _pulse_train(t, period, ph + 0.5 * k, 0.2, 0.05, 0.2) * amp
        leg(e, tr.tilt[:, 0], side, knee_hi * up, 1.6 * up, -0.1 * up)
        contact.append(np.clip(1.0 - 4.0 * up, 0.0, 1.0))  # the standing foot holds still
        other = "right" if side == "left" else "left"
        if ladder:
            arm_flex(e, other, np.clip(0.55 + 0.4 * up, 0.0, 1.0))
            sgn = 1.0 if other == "left" else -1.0
            e[:, _J[f"{other}_elbow"], 1] -= sgn * 0.9 * (1 - up)  # pulls down, elbow bends
        else:
            e[:, _J[f"{other}_shoulder"], 0] -= 0.5 * up  # arm swings with the other leg
    e[:, _J["neck"], 0] -= 0.3 if ladder else 0.0  # look up the ladder
    tr.contact = np.stack(contact, axis=1)


def _pulse_train(t, period, phase, rise, hold, fall) -> np.ndarray:
    """0-1 pulses every ``period`` s starting at ``phase`` periods (rise/hold/fall in periods)."""
    out = np.zeros_like(t)
    s = (phase % 1.0 - 1.0) * period
    while s < t[-1]:
        out += _pulse(t, s, rise * period, hold * period, fall * period)
        s += period
    return np.clip(out, 0.0, 1.0)


def _swing(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Golf, bat or two-handed tennis swings: backswing with the trunk turned away (hips, spine
    ~90 deg together), a fast downswing through to a high follow-through on the other side."""
    e, t = tr.euler, tr.t
    sport = rng.choice(["golf", "bat", "tennis"])
    hand = 1.0 if rng.random() < 0.8 else -1.0  # +1: swings from the right to the left
    bend = {"golf": 0.5, "bat": 0.1, "tennis": 0.2}[sport]
    height = {"golf": -0.9, "bat": 0.1, "tennis": -0.3}[sport]
    period = rng.uniform(2.2, 3.0)
    tr.tilt[:, 0] += bend
    _both(e, "hip", 0, -(bend + 0.25))
    _both(e, "knee", 0, 0.3)
    _both(e, "ankle", 0, -0.05)
    _both(e, "hip", 2, 0.12)
    start = 0.3
    turn = np.zeros_like(t)
    while start + 1.5 < t[-1]:
        back = _pulse(t, start, 0.45 * period, 0.08 * period, 0.12 * period)
        through = _pulse(t, start + 0.6 * period, 0.12 * period, 0.1 * period, 0.3 * period)
        turn += (back - rng.uniform(0.9, 1.1) * through) * amp
        start += period
    # turn > 0: to the right (backswing for hand = +1)
    twist = -hand * turn
    trunk(tr, 1, 1.2 * twist, pelvis=0.2)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        j = _J[f"{side}_shoulder"]
        lead = sgn == hand  # the lead arm crosses the chest on the backswing
        swing_to = np.clip(sgn * turn, 0.0, None)  # the arm goes across the body
        swing_away = np.clip(-sgn * turn, 0.0, None)
        e[:, j, 2] = e[:, j, 2] * 0.6 + sgn * (height + 0.9 * (swing_to + swing_away))
        e[:, j, 1] = -sgn * 1.1 * swing_to + sgn * 0.6 * swing_away
        e[:, j, 0] = -0.6 - 0.4 * swing_to
        bent = swing_away if lead else 1.5 * swing_away
        e[:, _J[f"{side}_elbow"], 1] = -sgn * (0.15 + 1.4 * bent)
        e[:, _J[f"{side}_collar"], 1] += -sgn * 0.3 * swing_to
    e[:, _J["neck"], 1] -= 0.6 * twist  # the eyes stay on the ball


def _side_lunge(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Side lunges: step wide, bend one knee (hips back, trunk forward) while the other leg stays
    straight and abducted (~30 deg); sides alternate or repeat."""
    e, t = tr.euler, tr.t
    period = rng.uniform(2.0, 2.6)
    alternate = rng.random() < 0.6
    first, _, _ = _side(rng, 0.5)
    wide = rng.uniform(0.3, 0.42)
    open_ = _pulse(t, 0.2, 0.5, t[-1] - 1.2, 0.5)
    _both(e, "hip", 2, wide * open_)
    _both(e, "ankle", 2, -0.5 * wide * open_)
    start, k = 0.9, 0
    while start + 1.2 < t[-1]:
        s = ("left" if first == "right" else "right") if alternate and k % 2 else first
        d = _pulse(t, start, 0.35 * period, 0.15 * period, 0.35 * period) * amp
        tr.tilt[:, 0] += 0.45 * d
        leg(e, 0.45 * d, s, 1.25 * d, 2.0 * d, 0.0)
        e[:, _J[f"{s}_hip"], 2] -= 0.35 * wide * d  # the bent knee tracks over the foot
        other = "right" if s == "left" else "left"
        e[:, _J[f"{other}_hip"], 0] -= 0.45 * d
        sgn = 1.0 if s == "left" else -1.0
        tr.tilt[:, 2] += sgn * 0.12 * d  # the pelvis sinks towards the bent leg
        e[:, _pair("hip"), 2] -= (sgn * 0.12 * d)[:, None]
        add_both(e, "shoulder", 0, -0.9 * d)
        start += period
        k += 1


def _arm_circles(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Arm circles (shoulder circumduction), small to large, forward or backward, both arms
    together or in opposition, sometimes one arm."""
    e, t = tr.euler, tr.t
    freq = rng.uniform(0.8, 1.4) * rng.choice([-1.0, 1.0])
    mode = rng.choice(["both", "opposed", "one"])
    size = keys(t, [0.0, 0.8, t[-1] * 0.6, t[-1] - 0.5, t[-1]],
                [0.0, 0.4, rng.uniform(0.8, 1.0), 0.6, 0.0]) * amp  # fmt: skip
    one, _, _ = _side(rng, 0.5)
    ph = 2 * np.pi * freq * t
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        if mode == "one" and side != one:
            continue
        p = ph + (np.pi if mode == "opposed" and side == "right" else 0.0)
        j = _J[f"{side}_shoulder"]
        # the hand traces a circle around the arm held out sideways (z ~ 0)
        e[:, j, 2] = e[:, j, 2] * (1 - np.clip(size, 0, 1)) + sgn * 0.7 * size * np.sin(p)
        e[:, j, 1] = -sgn * 0.9 * size * np.cos(p)
        e[:, _J[f"{side}_elbow"], 1] *= 1 - 0.8 * np.clip(size, 0, 1)
    tr.tilt[:, 0] += 0.03


def _high_knees(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Running in place with high knees (2.5-3.5 steps/s): a quick toe push-off lifts each
    thigh to about level, the foot lands on the forefoot and the heel drops; arms pump."""
    e, t = tr.euler, tr.t
    period = 1.0 / rng.uniform(1.25, 1.75)  # one step of each leg
    knee_hi = rng.uniform(1.1, 1.5)
    ph = rng.uniform(0.0, 1.0)
    tr.tilt[:, 0] += rng.uniform(0.05, 0.15)
    contact = []
    for k, (side, sgn) in enumerate((("left", 1.0), ("right", -1.0))):
        up = _pulse_train(t, period, ph + 0.5 * k, 0.22, 0.04, 0.2) * amp
        # toes drive off, the forefoot strikes: ramps of 50-90 ms (real ankle accelerations; a
        # 12 ms ramp reached 3x the real clip's peak angular acceleration)
        push = _pulse_train(t, period, ph + 0.5 * k - 0.06, 0.1, 0.0, 0.12)
        land = _pulse_train(t, period, ph + 0.5 * k + 0.42, 0.07, 0.02, 0.12)
        leg(e, tr.tilt[:, 0], side, knee_hi * up, 1.9 * up, 0.7 * push + 0.35 * land)
        contact.append(np.clip(1.0 - 4.0 * up, 0.0, 1.0))
        # the arm drives forward with the other leg, elbow at ~90 deg
        e[:, _J[f"{side}_shoulder"], 0] = 0.5 * knee_hi * (up - 0.5) - 0.2
        e[:, _J[f"{side}_elbow"], 1] = -sgn * (1.4 + 0.2 * up)
    _both(e, "shoulder", 2, -1.3)
    tr.contact = np.stack(contact, axis=1)


def _hop(tr: Track, rng: np.random.Generator, amp: float) -> None:
    """Hops on one leg (in place or hopscotch forward): crouch on the standing leg, the ankle
    snaps at take-off, a short flight, the landing absorbed by knee and ankle; the free leg
    hangs bent, the arms swing up for lift."""
    e, t = tr.euler, tr.t
    period = rng.uniform(0.6, 0.85)
    side, other, _ = _side(rng, 0.6)
    # one hop a period: the landing is absorbed into the crouch of the next take-off (0-0.62),
    # the toes drive (0.45-0.8), flight (0.6-1.0); extension is slow enough for the planted
    # foot to follow it
    bend = _pulse_train(t, period, 0.0, 0.12, 0.3, 0.2) * amp
    land = _pulse_train(t, period, 0.0, 0.06, 0.0, 0.2)
    push = _pulse_train(t, period, 0.45, 0.15, 0.05, 0.15)
    air = _pulse_train(t, period, 0.6, 0.17, 0.0, 0.23)
    tr.tilt[:, 0] += 0.25 * bend
    leg(e, tr.tilt[:, 0], side, 0.5 * bend, 0.9 * bend + 0.15 * air, 0.6 * push - 0.1 * land)
    # the free foot stays well above the hopping one (no support switch mid-hop)
    leg(e, tr.tilt[:, 0], other, rng.uniform(0.6, 0.9) + 0.2 * air, rng.uniform(1.6, 2.0))
    tr.tilt[:, 2] += 0.08 * (1.0 if side == "left" else -1.0)  # the pelvis over the foot
    _both(e, "shoulder", 0, 0.4 * bend - 0.7 * air)
    _both(e, "elbow", 1, -(0.6 + 0.4 * bend))
    tr.lift[:] = rng.uniform(0.08, 0.16) * air
    tr.forward[:] = rng.choice([0.0, rng.uniform(0.5, 1.0)]) * air
    tr.lock = False  # feet leave the floor


#: Motion kinds: name -> (builder, (min, max) duration in seconds).
MOTIONS: dict[str, tuple[Callable, tuple[float, float]]] = {
    "stretch": (_stretch, (4.5, 6.0)),
    "reach_across": (_reach_across, (4.0, 6.0)),
    "kneel": (_kneel, (4.5, 6.0)),
    "sit_floor": (_sit_floor, (5.0, 6.5)),
    "get_up": (_get_up, (4.0, 5.5)),
    "pick_up": (_pick_up, (4.0, 5.5)),
    "climb": (_climb, (4.0, 5.5)),
    "swing": (_swing, (4.5, 6.5)),
    "side_lunge": (_side_lunge, (4.0, 6.0)),
    "arm_circles": (_arm_circles, (3.5, 5.0)),
    "high_knees": (_high_knees, (3.0, 4.5)),
    "hop": (_hop, (3.0, 4.5)),
}
