"""Regressor provenance in topology.h5 and the manifest, and `python -m shards info` printing it;
topology files written before provenance read as "unknown"."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest

from shards.__main__ import main
from shards.manifest import load_manifest, write_manifest
from shards.topology import joint_provenance, load_topology, write_topology

PROV = {
    "coco17": {"source": "smplx face vertex ids + model joints"},
    "h36m17": {
        "source": "J_regressor_h36m_correct.npy",
        "file": "smplh/J_regressor_h36m_correct.npy",
        "sha256": "sha256:" + "ab" * 32,
    },
}


@pytest.fixture
def ds(fake_ds, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(fake_ds, root)
    return root


def test_old_topology_reads_unknown_and_info_says_so(ds, capsys):
    with h5py.File(ds / "topology.h5", "r") as f:  # written without provenance
        assert not [k for g in f["joints"].values() for k in g.attrs]
    topo = load_topology(ds)
    assert set(topo.provenance) == set(topo.regressors)
    assert all(p == {"source": "unknown"} for p in topo.provenance.values())
    assert main(["info", str(ds)]) == 0
    out = capsys.readouterr().out
    assert "regressor h36m17   unknown" in out and "notes     0 on inputs" in out


def test_provenance_round_trip_and_info(ds, capsys):
    topo = load_topology(ds)
    topo.provenance = {k: dict(v) for k, v in PROV.items() if k in topo.regressors}
    assert set(topo.provenance) == {"coco17", "h36m17"}
    write_topology(ds, topo)
    assert load_topology(ds).provenance == topo.provenance
    assert joint_provenance(ds) == topo.provenance
    man = load_manifest(ds)
    notes = [{"kind": "frame_rate", "input": "KIT/3/a_poses.npz", "reason": "declares 120 fps"}]
    write_manifest(ds, man.shards, dims=man.dims, config=man.config, skipped=man.skipped,
                   notes=notes, provenance={"regressors": PROV})  # fmt: skip
    man = load_manifest(ds)
    assert man.notes == notes and man.provenance == {"regressors": PROV}
    assert main(["info", str(ds)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("regressor h36m17"))
    assert "J_regressor_h36m_correct.npy" in line and PROV["h36m17"]["sha256"] in line
    assert "1 x frame_rate" in out
    assert main(["info", str(ds), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["regressors"]["h36m17"] == PROV["h36m17"] and d["notes"] == notes


def test_manifest_provenance_fills_an_old_topology(ds, capsys):
    man = load_manifest(ds)
    write_manifest(ds, man.shards, dims=man.dims, config=man.config,
                   provenance={"regressors": PROV})  # fmt: skip
    assert main(["info", str(ds), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["regressors"]["h36m17"] == PROV["h36m17"]
