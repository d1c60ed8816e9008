"""What makes clips unlike each other: subject style, tempo, amplitude, posture and mocap
texture layered over a builder's nominal performance (:mod:`pipeline.synth.moves`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from pipeline.synth.joint_names import GROUPS
from pipeline.synth.joint_names import JOINT_INDEX as _J
from pipeline.synth.joint_names import LEFT as _LEFT
from pipeline.synth.joint_names import RIGHT as _RIGHT
from pipeline.synth.joint_names import pair as _pair
from pipeline.synth.kinds import MOTIONS
from pipeline.synth.moves import Track, base_track

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
    if tr.vary != 1.0:  # floor poses keep most of their geometry
        centre = 1.0 + tr.vary * (centre - 1.0)
        gain = 1.0 + tr.vary * (gain - 1.0)
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


def perform(kind: str, rng: np.random.Generator, fps: float, small: bool, style: Style) -> Track:
    """One clip of ``kind`` performed by a subject of ``style`` (the builder, then the layers)."""
    builder, (lo, hi) = MOTIONS[kind]
    dur = rng.uniform(1.2, 1.6) if small else rng.uniform(lo, hi)
    n = int(round(dur * fps))
    t = np.arange(n) / fps
    amp = rng.uniform(0.85, 1.1)
    tr = base_track(warped_clock(t, rng, style.tempo), rng)
    stand = copy.deepcopy(tr)
    builder(tr, rng, amp)
    tr.t = stand.t = t
    _vary(tr, stand, rng, style)
    _secondary(tr, stand)
    _posture(tr, style)
    _texture(tr, rng, style)
    return tr
