"""Same world on every node: before any compute, and again before a node's first unit, a node
proves that it sees the driver's output folder and the driver's inputs.

The driver writes a fresh random token to ``<out>/.build-token`` and describes what it sees
(:func:`expectation`): the sha256 of each body-model file the plan needs, of each joint
regressor file it uses, of ``plan.npz``, and where each joint set's regressor comes from. On a
node (:func:`check_here`) the output folder must hold the same token and be writable, every
file must hash the same and the regressors must resolve the same way; the first difference is
one line naming the file (the driver names the node). Every unit's job carries the expectation,
so a node that joins the cluster later is checked before its first unit.

``MPT_BUILD_NODE_PATHS="SRC=DST[;SRC=DST...]"`` is a testing hook, like ``MPT_BUILD_FAULT``: a
node whose environment (``ray start``'s) sets it reads paths under SRC from DST, which is how
the tests give one of two nodes on one host a different body-model folder or its own output
folder.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pipeline.body_models import load_body_model, model_file
from pipeline.build.config import NodeMismatch
from pipeline.joints import KeypointRegressor
from shards.atomic import write_atomic
from shards.writer import file_checksum

TOKEN_NAME = ".build-token"
NODE_PATHS_ENV = "MPT_BUILD_NODE_PATHS"

_CHECKED: dict[str, str | None] = {}  # this process's verdict per expectation


def node_path(path: str | os.PathLike) -> Path:
    """``path`` as this node reads it (the :data:`NODE_PATHS_ENV` testing hook, else as is)."""
    p = str(path)
    for pair in filter(None, os.environ.get(NODE_PATHS_ENV, "").split(";")):
        src, _, dst = pair.partition("=")
        if src and (p == src or p.startswith(src.rstrip("/") + "/")):
            return Path(dst + p[len(src.rstrip("/")) :])
    return Path(p)


def sha256(path: Path) -> str | None:
    """``sha256:<hex>`` of a file (:func:`shards.writer.file_checksum`), None when it cannot be
    read."""
    try:
        return file_checksum(path, "sha256")
    except OSError:
        return None


def input_files(body_models: Path, model_type: str, genders: set[str], provenance: dict) -> list:
    """The files a unit reads besides motion files, relative to the body-model folder: the
    model of each gender (and neutral) and the regressor files the driver's topology uses."""
    files = [model_file(body_models, model_type, g) for g in sorted(genders | {"neutral"})]
    rel = [p.relative_to(body_models).as_posix() for p in files]
    rel += sorted({p["file"] for p in provenance.values() if p.get("file")})
    return list(dict.fromkeys(rel))


def _regressors(provenance: dict) -> dict[str, str]:
    """{joint set: "source file sha256"} of a regressor provenance."""
    return {
        k: " ".join(p[f] for f in ("source", "file", "sha256") if p.get(f))
        for k, p in sorted(provenance.items())
    }


def expectation(out: Path, body_models: Path, cfg: dict, genders: set[str], topology) -> dict:
    """Write a fresh token into ``out`` and return what every node must see (JSON-able)."""
    token = secrets.token_hex(16)
    write_atomic(out / TOKEN_NAME, token + "\n")
    rel = input_files(body_models, cfg["build"]["model_type"], genders, topology.provenance)
    return {
        "out": str(out),
        "token": token,
        "body_models": str(body_models),
        "model_type": cfg["build"]["model_type"],
        "files": {r: sha256(body_models / r) for r in rel},
        "plan": sha256(out / "plan.npz"),
        "regressors": _regressors(topology.provenance),
    }


def check_here(expect: dict) -> str | None:
    """None when this node sees what the driver saw, else one line (without the node's name)
    naming the folder or file that differs. Cached per process and expectation."""
    key = json.dumps(expect, sort_keys=True)
    if key not in _CHECKED:
        _CHECKED[key] = _check(expect)
    return _CHECKED[key]


def _check(expect: dict) -> str | None:
    out = node_path(expect["out"])
    shared = "is the output folder on a filesystem every node sees?"
    try:
        token = (out / TOKEN_NAME).read_text().strip()
    except OSError:
        return f"{expect['out']}: not the driver's output folder here (no {TOKEN_NAME}; {shared})"
    if token != expect["token"]:
        return f"{expect['out']}: not the driver's output folder here (another token; {shared})"
    try:
        probe = out / f".write-probe-{secrets.token_hex(6)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return f"{expect['out']}: output folder not writable here ({e.strerror or e})"
    if sha256(out / "plan.npz") != expect["plan"]:
        return f"{Path(expect['out']) / 'plan.npz'}: differs from the driver's"
    bm = Path(expect["body_models"])
    for rel, want in expect["files"].items():
        got = sha256(node_path(bm / rel))
        if got != want:
            return f"{bm / rel}: {_state(got)} here, {_state(want)} on the driver"
    regs = _node_regressors(node_path(bm), expect["model_type"])
    for name, want in expect["regressors"].items():
        if regs.get(name) != want:
            return (
                f"{bm}: the {name} joint regressor differs ({regs.get(name)} here, {want} on the "
                "driver)"
            )
    return None


def _state(digest: str | None) -> str:
    return "missing or unreadable" if digest is None else digest[:19]


def _node_regressors(body_models: Path, model_type: str) -> dict[str, str]:
    """How the regressors resolve in this node's body-model folder."""
    try:
        m = load_body_model(body_models, model_type=model_type, gender="neutral")
        kr = KeypointRegressor.from_body_models(body_models, model_type, m.num_vertices,
                                                m.num_joints)  # fmt: skip
    except Exception as e:  # noqa: BLE001 - reported as the differing regressor
        return {"error": str(e).splitlines()[0] if str(e) else type(e).__name__}
    return _regressors(kr.provenance)


def motion_sizes(amass: Path, sequences: list[str]) -> dict[str, int | None]:
    """Byte size of each sequence file as the driver sees it (units compare, not hash, these)."""
    out = {}
    for rel in sequences:
        try:
            out[rel] = (amass / rel).stat().st_size
        except OSError:
            out[rel] = None
    return out


def check_motion(amass: str, sizes: dict[str, int | None]) -> str | None:
    """None when each motion file has the driver's size here, else one line naming it."""
    for rel, want in sizes.items():
        if want is None:
            continue
        p = node_path(Path(amass) / rel)
        try:
            got = p.stat().st_size
        except OSError:
            return f"{Path(amass) / rel}: missing here, {want} bytes on the driver"
        if got != want:
            return f"{Path(amass) / rel}: {got} bytes here, {want} on the driver"
    return None


def node_label(node: dict) -> str:
    """``node NAME (ADDRESS, id ABCDEF12)`` of a ``ray.nodes()`` entry."""
    name, addr = node.get("NodeName", "?"), node.get("NodeManagerAddress", "?")
    where = (
        f"{name} ({addr}, id {node['NodeID'][:8]})"
        if name != addr
        else (f"{addr} (id {node['NodeID'][:8]})")
    )
    return f"node {where}"


def check_cluster(ray, expect: dict) -> None:
    """Run :func:`check_here` on every alive node with CPUs (one task pinned to each); the
    first node that differs stops the build (:class:`~pipeline.build.config.NodeMismatch`)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # heavy: ray

    nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    task = ray.remote(num_cpus=0, max_retries=0)(check_here)
    refs = [
        task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(expect)
        for n in nodes
    ]
    for n, msg in zip(nodes, ray.get(refs)):
        if msg:
            raise NodeMismatch(f"{node_label(n)}: {msg}")


def label_of(ray, node_id: str) -> str:
    """The label of a node by id (for a unit refused on a node that joined later)."""
    for n in ray.nodes():
        if n["NodeID"] == node_id:
            return node_label(n)
    return f"node {node_id[:8]}"
