"""Preflight: everything a build checks on the driver before any work, each failure one
:class:`~pipeline.build.config.PreflightError` line naming the path and the reason.

The folders exist and the output is writable (:func:`check_paths`), the archive holds readable
sequences of the build's body-model family (:func:`list_archive`), and the body models the
plan needs load and fit their joint regressors (:func:`check_models`, which builds the
topology). Likely mistakes that do not stop a build are ``warning:`` lines and manifest notes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cameras.rig import make_rig
from pipeline import amass, joints, mesh_sampling
from pipeline.body_models import load_body_model
from pipeline.build.config import PreflightError
from pipeline.joints import APPROXIMATED, H36M_REGRESSOR_NAMES
from pipeline.plan import PlanConfig, SeqEntry
from pipeline.process import RenderConfig
from pipeline.subsets import check_listing, summary_lines
from shards.schema import GENDERS
from shards.topology import Topology


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def check_paths(amass_root: Path, body_models: Path, out: Path) -> None:
    """Folders exist and the output is writable (one clear line otherwise)."""
    if not amass_root.is_dir():
        raise PreflightError(f"{amass_root}: AMASS folder not found")
    if not body_models.is_dir():
        raise PreflightError(f"{body_models}: body-model folder not found")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PreflightError(f"{out}: output folder not writable ({e.strerror or e})") from e


def scan_archive(
    root: Path, model_type: str, scanned: tuple[list, list] | None = None
) -> tuple[list[SeqEntry], list[dict], dict[str, tuple[str, str]]]:
    """List readable sequences of ``model_type`` and record the other files as skips.

    ``scanned``: the ``amass.scan(root, on_error="skip")`` result when already at hand.
    Returns (entries, skips, {relative path: (model_type, gender)}).
    """
    infos, bad = scanned if scanned is not None else amass.scan(root, on_error="skip")
    entries, kinds = [], {}
    skips = [{"input": b.path, "reason": b.reason, "samples": 0} for b in bad]
    for info in infos:
        if info.model_type != model_type:
            reason = f"{info.model_type} sequence; this build poses {model_type} body models"
            skips.append({"input": info.path, "reason": reason, "samples": 0})
            continue
        entries.append(SeqEntry(info.path, info.subset, int(info.frames), float(info.fps)))
        kinds[info.path] = (info.model_type, str(info.gender))
    return entries, skips, kinds


@dataclass
class Listing:
    """The usable sequences of an archive, the files skipped, each sequence's (model type,
    gender) and the notes (warnings) on the listing."""

    entries: list[SeqEntry]
    skips: list[dict]
    kinds: dict[str, tuple[str, str]]
    notes: list[dict] = field(default_factory=list)


def list_archive(root: Path, model_type: str, pcfg: PlanConfig) -> Listing:
    """Scan the archive; no usable sequence stops the build, listing mistakes are warnings."""
    entries, skips, kinds = scan_archive(root, model_type)
    if not entries:
        first = f"; first: {skips[0]['input']}: {skips[0]['reason']}" if skips else ""
        raise PreflightError(
            f"{root}: no usable {model_type} AMASS sequences "
            f"(*_poses.npz, *_stageii.npz; {len(skips)} files skipped{first})"
        )
    notes = check_listing(entries, pcfg.splits, str(root), [s["input"] for s in skips])
    for line in summary_lines(notes):
        warn(line)
    return Listing(entries, skips, kinds, notes)


def check_body_models(body_models: Path, needed: set[tuple[str, str]]) -> None:
    """Every (model_type, gender) the plan needs loads (plus the neutral model for topology)."""
    for model_type, gender in sorted(needed | {(next(iter(needed))[0], "neutral")}):
        try:
            load_body_model(body_models, model_type=model_type, gender=gender)
        except Exception as e:  # noqa: BLE001 - any failure is reported as one line
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise PreflightError(
                f"{body_models}: {model_type} {gender} body model unusable ({msg})"
            ) from e


def check_models(body_models: Path, cfg: dict, needed: set[tuple[str, str]]):
    """The body models of ``needed`` (model type, gender) load and the joint regressors fit
    them: returns (topology, notes); an approximated H36M-17 regressor is a warning."""
    check_body_models(body_models, needed)
    try:  # also validates the joint regressors against the model before any work
        topology = build_topology(
            body_models,
            RenderConfig(**cfg["render"]),
            cfg["build"]["model_type"],
            genders={g for _, g in needed},
        )
    except (OSError, ValueError) as e:
        msg = str(e).splitlines()[0]
        raise PreflightError(f"{body_models}: unusable topology/regressors ({msg})") from e
    notes = []
    approx = h36m_warning(topology.provenance, body_models)
    if approx:
        warn(approx)
        notes.append({"kind": "h36m_approximated", "input": str(body_models), "reason": approx})
    return topology, notes


def h36m_warning(provenance: dict, body_models: Path) -> str | None:
    """The loud line for a build whose H36M-17 regressor is approximated (else None)."""
    if provenance.get("h36m17", {}).get("source") != APPROXIMATED:
        return None
    return (
        f"H36M-17 IS APPROXIMATED from the body model's joints (a few cm off Human3.6M's): no "
        f"{' or '.join(H36M_REGRESSOR_NAMES)} of this topology in {body_models} (searched its "
        f"root, smplh/, smpl/, smplx/ and any folder two levels down); put METRO's "
        f"J_regressor_h36m_correct.npy there for the real regressor"
    )


def build_topology(body_models: Path, render: RenderConfig, model_type: str, genders=("neutral",)):
    """Template (neutral model), faces, joint regressors and names, D/U matrices, rig, and the
    skinning arrays of the body model for each of ``genders`` (what the reader's
    ``shards.body`` recomputes vertices from)."""
    model = load_body_model(body_models, model_type=model_type, gender="neutral")
    template = np.asarray(model.v_template, np.float32)
    faces = np.asarray(model.faces, np.int32)
    kr = joints.KeypointRegressor.from_body_models(
        body_models, model_type, model.num_vertices, model.num_joints
    )
    coco, h36m = kr.vertex_regressors(model.j_regressor)
    names = {"coco17": list(joints.COCO17), "h36m17": list(joints.H36M17)}
    levels = mesh_sampling.build_mesh_levels(template, faces, levels=2, factor=4)
    sampling = {}
    for i, (d, u) in enumerate(zip(levels.down, levels.up)):
        sampling[f"down_{i}"], sampling[f"up_{i}"] = d, u
    rig = make_rig(views=render.views)
    rig_map = {
        "R": rig.R,
        "t": rig.t,
        "K": rig.K,
        "dist": rig.dist,
        "size": rig.image_size,
        "interpolated": rig.interpolated,
        "centre": np.broadcast_to(rig.centre, (len(rig), 3)),
    }
    return Topology(
        template=template,
        faces=faces,
        joint_names=names,
        regressors={"coco17": coco, "h36m17": h36m},
        sampling=sampling,
        rig=rig_map,
        rig_names=[c.name for c in rig],
        attrs={"model_type": model_type, "source": str(body_models)},
        provenance=kr.provenance,
        body={
            g: load_body_model(body_models, model_type=model_type, gender=g).skinning_arrays()
            for g in sorted(set(genders), key=GENDERS.index)
        },
        body_attrs={"model_type": model_type, "num_betas": int(model.num_betas)},
    )
