"""Detector-realistic heatmap augmentation on the trainer's device (``train.augment``).

The model only ever sees perfect Gaussians at the exact projected joints unless it is shown
what a 2D pose network gives instead. This module perturbs the *keypoints* a sample's heatmaps
were drawn from and re-draws the heatmaps with the build's codec, in two halves in the spirit
of mmpose's codecs:

- :func:`sample` draws a :class:`Perturbation` for a batch (every random number, from one
  generator seeded by ``(train.seed, rank, step)``, so a resumed run augments step ``s`` as
  the uninterrupted run did);
- :func:`apply` turns heatmaps + keypoints + a perturbation into augmented heatmaps (and the 2D
  loss target in the augmented crop), deterministically.

Augmentations, each with a probability per sample and a size (``trainer/config.py``
``AugmentConfig``; defaults and sources in docs/trainer.md):

- ``crop``: the box moves by ``shift`` x side per axis and its side scales by ``1 +- scale``
  (a detector's box is never the ground-truth box); every keypoint, and the 2D loss target,
  is re-expressed in the new box;
- ``jitter``: per-joint keypoint error, bivariate Student-t (``df``, unit variance per axis)
  x :data:`JOINT_ERROR_PX` x ``scale``, in image pixels (converted with the sample's
  ``crop_side``): wrists and ankles err more than shoulders and hips;
- ``swap``: the keypoints of one left/right limb pair (shoulders ... ankles) exchanged;
- ``sigma``: per-joint blob width ``sigma x U(1 - spread, 1 + spread)``;
- ``height``: per-joint peak height (confidence) ``U(low, 1)``;
- ``peak``: a spurious second peak of height ``U(height / 2, height)`` in one channel, at the
  position of that joint's left/right partner (the confusion detectors make), merged by max;
- ``miss``: each joint of a chosen sample missed (channel zeroed) with probability ``rate``.

A sample none of them picked keeps its stored heatmaps bit for bit; a picked one is re-drawn
whole by :func:`encode`, a torch port of :func:`shards.heatmaps.encode` (same drawable rule,
same Gaussian, same uint8 rounding; equal bytes, tested), extended with a per-joint sigma and
height. A channel counts as drawn when its stored heatmap is not all zero (the build's own
flag). 3D targets are untouched; the 2D target stays the true joints, in the crop the model
sees.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import torch

from shards.heatmaps import OUTSIDE_SIGMAS

#: COCO-17 left/right pairs (eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
#: Pairs a ``swap`` exchanges: the limbs (shoulders to ankles).
LIMB_PAIRS = FLIP_PAIRS[2:]
#: Per-axis standard deviation of a detector's 2D error per COCO-17 joint, in image pixels of
#: 1000 x 1000 Human3.6M frames (docs/trainer.md: CPN / HRNet on Human3.6M, about 5-7 px mean
#: error overall, wrists and ankles about twice the torso's). Order: nose, eyes, ears,
#: shoulders, elbows, wrists, hips, knees, ankles (left, right).
JOINT_ERROR_PX = (
    3.0,
    3.0,
    3.0,
    3.5,
    3.5,
    3.5,
    3.5,
    5.0,
    5.0,
    7.0,
    7.0,
    4.5,
    4.5,
    5.0,
    5.0,
    7.0,
    7.0,
)


def partners(k: int = 17) -> torch.Tensor:
    """(K,) index of each joint's left/right partner (-1: none, the nose)."""
    out = torch.full((k,), -1, dtype=torch.long)
    for a, b in FLIP_PAIRS:
        out[a], out[b] = b, a
    return out


@functools.lru_cache(maxsize=32)
def _constants(device: torch.device, k: int) -> dict[str, torch.Tensor]:
    """The augmentations' constant tables on ``device``, made once per device: a tensor built
    from host data is a blocking host-to-device copy, which a training step must not make."""
    return {
        "std": torch.tensor(JOINT_ERROR_PX[:k], dtype=torch.float64, device=device),
        "limb_pairs": torch.tensor(LIMB_PAIRS, device=device),
        "partners": partners(k).to(device),
    }


# ---- the codec (torch port of shards.heatmaps.encode) ---------------------------------------
def drawable(kp: torch.Tensor, valid: torch.Tensor, res: int, sigma: torch.Tensor) -> torch.Tensor:
    """(..., K) bool: valid, finite, centre within 3 sigma of the crop square (the build's
    rule, :func:`shards.heatmaps.drawable`, with a per-joint ``sigma``)."""
    ok = torch.isfinite(kp).all(-1) & valid
    lo, hi = -0.5, res - 0.5
    out = torch.clamp(torch.maximum(lo - kp, kp - hi), min=0.0)
    dist = torch.sqrt((out * out).sum(-1))
    return ok & (dist <= OUTSIDE_SIGMAS * sigma)


def encode(
    kp: torch.Tensor,
    valid: torch.Tensor,
    res: int,
    sigma: float | torch.Tensor,
    height: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 heatmaps (..., K, R, R) and weights (..., K) of keypoints in heatmap pixels.

    ``floor(255 * h * exp(-((j - x)^2 + (i - y)^2) / (2 sigma^2)) + 0.5)`` over the full grid,
    in float64 (outside the build's window every value rounds to 0, so the full grid gives the
    build's bytes); ``sigma`` and ``height`` (default 1) may be per joint (..., K).
    """
    kp = kp.to(torch.float64)
    sig = torch.as_tensor(sigma, dtype=torch.float64, device=kp.device).expand(kp.shape[:-1])
    draw = drawable(kp, valid.bool(), res, sig)
    x = torch.where(draw, kp[..., 0], 0.0)
    y = torch.where(draw, kp[..., 1], 0.0)
    grid = torch.arange(res, dtype=torch.float64, device=kp.device)
    inv = (1.0 / (2.0 * sig * sig))[..., None]
    gx = torch.exp(-((grid - x[..., None]) ** 2) * inv) * draw[..., None]  # 0: not drawn
    gy = torch.exp(-((grid - y[..., None]) ** 2) * inv)
    if height is not None:  # on the 1-D profile: the full grid costs one product
        gy = gy * height.to(torch.float64)[..., None]
    val = gy[..., :, None] * gx[..., None, :]
    q = val.mul_(255.0).add_(0.5).floor_()
    return q.to(torch.uint8), draw.float()


def to_heatmap_px(xy: torch.Tensor, res: int) -> torch.Tensor:
    """Normalised crop coordinates (box edges at -1, +1) -> heatmap pixels of an R x R map."""
    return ((xy + 1.0) * res - 1.0) / 2.0


# ---- what to do to a batch ------------------------------------------------------------------
@dataclass
class Perturbation:
    """Every random choice for a batch of B samples with K joints (identity values where an
    augmentation is off for a sample)."""

    crop_shift: torch.Tensor  # (B, 2) box centre shift, fraction of the side
    crop_scale: torch.Tensor  # (B,) box side factor
    jitter_px: torch.Tensor  # (B, K, 2) keypoint offsets, image pixels
    swap: torch.Tensor  # (B,) long: index into LIMB_PAIRS, -1 none
    sigma: torch.Tensor  # (B, K) sigma factor
    height: torch.Tensor  # (B, K) peak height
    peak: torch.Tensor  # (B,) long: channel given a second peak, -1 none
    peak_height: torch.Tensor  # (B,)
    miss: torch.Tensor  # (B, K) bool: channel zeroed

    def redrawn(self) -> torch.Tensor:
        """(B,) bool: the samples whose heatmaps change."""
        return (
            (self.crop_shift != 0).any(-1)
            | (self.crop_scale != 1)
            | (self.jitter_px != 0).any(-1).any(-1)
            | (self.swap >= 0)
            | (self.sigma != 1).any(-1)
            | (self.height != 1).any(-1)
            | (self.peak >= 0)
            | self.miss.any(-1)
        )

    @classmethod
    def identity(cls, b: int, k: int, device: torch.device | str = "cpu") -> Perturbation:
        """No change to any sample (tests build single augmentations from it)."""
        f = dict(dtype=torch.float64, device=device)
        none = torch.full((b,), -1, dtype=torch.long, device=device)
        return cls(
            torch.zeros(b, 2, **f), torch.ones(b, **f), torch.zeros(b, k, 2, **f), none,
            torch.ones(b, k, **f), torch.ones(b, k, **f), none.clone(), torch.zeros(b, **f),
            torch.zeros(b, k, dtype=torch.bool, device=device),
        )  # fmt: skip

    def to(self, device: torch.device | str) -> Perturbation:
        """On ``device`` (tensors already there are kept, not copied)."""
        dev = torch.device(device)
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return Perturbation(**{k: v if v.device == dev else v.to(dev) for k, v in moved.items()})


def active(aug: dict) -> bool:
    """Whether any augmentation of a ``train.augment`` config can fire."""
    return any(float(a["p"]) > 0 for a in aug.values())


def sample(aug: dict, b: int, k: int, gen: torch.Generator) -> Perturbation:
    """Draw a batch's :class:`Perturbation` from ``gen`` (on its device). The same numbers are
    drawn whatever the probabilities, in a fixed order, so a batch's draw depends only on the
    generator's seed."""
    dev = gen.device
    f = dict(dtype=torch.float64, device=dev, generator=gen)

    def pick(name: str) -> torch.Tensor:
        return torch.rand(b, **f) < float(aug[name]["p"])

    on = {name: pick(name) for name in ("crop", "jitter", "swap", "sigma", "height", "peak")}
    on["miss"] = pick("miss")
    c = aug["crop"]
    shift = (2 * torch.rand(b, 2, **f) - 1) * float(c["shift"])
    scale = 1 + (2 * torch.rand(b, **f) - 1) * float(c["scale"])
    j = aug["jitter"]
    df = int(j["df"])
    z = torch.randn(b, k, 2, **f)
    if df > 0:  # bivariate Student-t: one chi-square per joint, unit variance per axis if df > 2
        chi = (torch.randn(b, k, df, **f) ** 2).mean(-1, keepdim=True)
        z = z / chi.sqrt() * ((df - 2) / df) ** 0.5 if df > 2 else z / chi.sqrt()
    std = _constants(torch.device(dev), k)["std"]
    jitter = z * std[:, None] * float(j["scale"])
    swap = torch.randint(0, len(LIMB_PAIRS), (b,), device=dev, generator=gen)
    sig = 1 + (2 * torch.rand(b, k, **f) - 1) * float(aug["sigma"]["spread"])
    low = float(aug["height"]["low"])
    height = low + (1 - low) * torch.rand(b, k, **f)
    peak = torch.randint(1, k, (b,), device=dev, generator=gen)  # a joint with a partner
    ph = float(aug["peak"]["height"]) * (0.5 + 0.5 * torch.rand(b, **f))
    miss = torch.rand(b, k, **f) < float(aug["miss"]["rate"])

    return Perturbation(
        crop_shift=torch.where(on["crop"][:, None], shift, 0.0),
        crop_scale=torch.where(on["crop"], scale, 1.0),
        jitter_px=torch.where(on["jitter"][:, None, None], jitter, 0.0),
        swap=torch.where(on["swap"], swap, -1),
        sigma=torch.where(on["sigma"][:, None], sig, 1.0),
        height=torch.where(on["height"][:, None], height, 1.0),
        peak=torch.where(on["peak"], peak, -1),
        peak_height=torch.where(on["peak"], ph, 0.0),
        miss=miss & on["miss"][:, None],
    )


def apply(
    heatmaps: torch.Tensor,
    kp2d: torch.Tensor,
    crop_side: torch.Tensor,
    pert: Perturbation,
    sigma: float,
    joints2d: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augmented uint8 heatmaps (B, K, R, R) and the 2D target in the augmented crop.

    ``heatmaps`` are the stored uint8 maps, ``kp2d`` (B, K, >=2) the keypoints they were drawn
    from in normalised crop coordinates, ``crop_side`` (B,) the box side in image pixels,
    ``sigma`` the build's; ``joints2d`` (B, J, 3) the 2D loss target (normalised, visibility
    last), returned moved with the crop (None in, None out). Rows ``pert`` leaves alone are the
    stored heatmaps, the same tensor values.
    """
    b, k, res = heatmaps.shape[0], heatmaps.shape[1], heatmaps.shape[-1]
    dev = heatmaps.device
    p = pert.to(dev)
    idx = torch.arange(b, device=dev)
    valid = heatmaps.flatten(2).amax(-1) > 0  # the build's drawn flag
    xy = kp2d[..., :2].to(torch.float64)
    # crop: box centre c + shift * side, side * scale  =>  x' = (x - 2 shift) / scale
    xy = (xy - 2 * p.crop_shift[:, None]) / p.crop_scale[:, None, None]
    kp = to_heatmap_px(xy, res)
    px_to_hm = res / (crop_side.to(torch.float64) * p.crop_scale)  # image px -> map px
    kp = kp + p.jitter_px * px_to_hm[:, None, None]
    # swap one limb pair: the two keypoints (and drawn flags) exchange channels
    const = _constants(torch.device(dev), k)
    pairs = const["limb_pairs"][p.swap.clamp(min=0)]
    keep = torch.arange(k, device=dev).repeat(b, 1)
    order = keep.clone()
    order[idx, pairs[:, 0]], order[idx, pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
    order = torch.where((p.swap >= 0)[:, None], order, keep)
    kp = torch.gather(kp, 1, order[..., None].expand_as(kp))
    valid = torch.gather(valid, 1, order)
    hm, _ = encode(kp, valid & ~p.miss, res, sigma * p.sigma, p.height)  # missed: all zero
    # a second peak in channel ch at its partner's keypoint, merged by max
    ch = p.peak.clamp(min=1)
    mate = const["partners"][ch]
    ok = (p.peak >= 0) & valid[idx, mate] & valid[idx, ch] & ~p.miss[idx, ch]
    extra, _ = encode(
        kp[idx, mate][:, None], ok[:, None], res, sigma * p.sigma[idx, ch][:, None],
        p.peak_height[:, None],
    )  # fmt: skip
    hm[idx, ch] = torch.maximum(hm[idx, ch], extra[:, 0])
    out = torch.where(p.redrawn()[:, None, None, None], hm, heatmaps)
    if joints2d is not None:
        moved = (joints2d[..., :2].to(torch.float64) - 2 * p.crop_shift[:, None]) / p.crop_scale[
            :, None, None
        ]
        crop = ((p.crop_shift != 0).any(-1) | (p.crop_scale != 1))[:, None, None]
        xy2 = torch.where(crop, moved.to(joints2d.dtype), joints2d[..., :2])
        joints2d = torch.cat([xy2, joints2d[..., 2:]], -1)
    return out, joints2d


# ---- the trainer's side ---------------------------------------------------------------------
class Augmenter:
    """``train.augment`` bound to a dataset's codec, a seed and a rank: ``aug(batch, step)``
    returns the batch with augmented ``heatmaps`` and ``joints2d`` (on the batch's device)."""

    def __init__(self, aug: dict, sigma: float, seed: int, rank: int = 0):
        self.aug, self.sigma, self.seed, self.rank = aug, float(sigma), int(seed), int(rank)

    def generator(self, step: int, device: torch.device | str) -> torch.Generator:
        """The generator of one step: seeded by (seed, rank, step) only, so a resumed run
        draws what the uninterrupted one drew at that step."""
        key = (self.seed * 1_000_003 + self.rank) * 1_000_000_007 + int(step)
        return torch.Generator(device=device).manual_seed(key % (2**63))

    def __call__(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        hm = batch["heatmaps"]
        if hm.dtype != torch.uint8:
            raise ValueError("augment: heatmaps must be the stored uint8 maps")
        b, k = hm.shape[:2]
        pert = sample(self.aug, b, k, self.generator(step, hm.device))
        hm, j2 = apply(hm, batch["kp2d"], batch["crop_side"], pert, self.sigma, batch["joints2d"])
        return {**batch, "heatmaps": hm, "joints2d": j2}


def make_augmenter(cfg: dict, sigma: float, rank: int) -> Augmenter | None:
    """The trainer's augmenter, or None when ``train.augment`` asks for nothing."""
    aug = cfg["train"].get("augment")
    if not aug or not active(aug):
        return None
    return Augmenter(aug, sigma, int(cfg["train"]["seed"]), rank)
