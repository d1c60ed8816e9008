"""verify / info / show: each corruption kind is caught on a fresh dataset and named."""

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from shards.__main__ import main
from shards.testing import make_fake_dataset
from shards.verify import info, verify


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    return make_fake_dataset(root, n_meshes=24, views=2, res=16, nv=30, masks=True, shards=3)


@pytest.fixture
def ds(pristine, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(pristine, root)
    return root


def _rewrite_manifest(root, fn):
    doc = json.loads((root / "manifest.json").read_text())
    fn(doc)
    (root / "manifest.json").write_text(json.dumps(doc))


def _h5_edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)


def _resync(root, name):
    """Make the manifest's bytes/checksum match an edited file, so only the schema check fires."""
    from shards.writer import file_checksum

    def fix(doc):
        for s in doc["shards"]:
            if s["name"] == name:
                s["bytes"] = (root / name).stat().st_size
                s["checksum"] = file_checksum(root / name)

    _rewrite_manifest(root, fix)


def test_clean_dataset_passes(ds):
    rep = verify(ds)
    assert rep.ok and rep.checked == 3 and not rep.warnings, rep.lines()


def test_checksum_mismatch(ds):
    p = ds / "shard-000001.h5"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    p.write_bytes(bytes(data))
    rep = verify(ds)
    assert rep.bad_files == ["shard-000001.h5"]
    assert any("checksum mismatch" in r for _, r in rep.errors)


def test_truncated(ds):
    p = ds / "shard-000002.h5"
    p.write_bytes(p.read_bytes()[:-1000])
    rep = verify(ds)
    assert rep.bad_files == ["shard-000002.h5"]
    assert any(r.startswith("truncated") for _, r in rep.errors)


def test_missing_field(ds):
    _h5_edit(ds / "shard-000000.h5", lambda f: f.__delitem__("views/kp2d"))
    _resync(ds, "shard-000000.h5")
    rep = verify(ds)
    assert rep.errors == [("shard-000000.h5", "missing field 'views/kp2d'")]


def test_misshaped_field(ds):
    def edit(f):
        data = f["joints3d/h36m17"][()]
        del f["joints3d/h36m17"]
        f["joints3d/h36m17"] = data[:, :14]

    _h5_edit(ds / "shard-000001.h5", edit)
    _resync(ds, "shard-000001.h5")
    rep = verify(ds)
    assert rep.bad_files == ["shard-000001.h5"]
    assert "'joints3d/h36m17' has shape (8, 14, 3), expected (8, 17, 3)" in rep.errors[0][1]


def test_mesh_count_disagrees_with_manifest(ds):
    def edit(d):  # a self-consistent manifest that disagrees with the file
        d["shards"][2]["meshes"] += 1
        d["meshes"] += 1

    _rewrite_manifest(ds, edit)
    rep = verify(ds)
    assert rep.bad_files == ["shard-000002.h5"]
    assert any("manifest says 9" in r for _, r in rep.errors)


def test_missing_shard_and_extra_unlisted(ds):
    (ds / "shard-000001.h5").rename(ds / "shard-000007.h5")
    rep = verify(ds)
    assert rep.errors == [("shard-000001.h5", "shard file missing")]
    assert rep.warnings[0][0] == "shard-000007.h5" and "not listed" in rep.warnings[0][1]


def test_extra_unlisted_only_warns(ds):
    shutil.copy(ds / "shard-000000.h5", ds / "shard-000009.h5")
    rep = verify(ds)
    assert rep.ok and [w[0] for w in rep.warnings] == ["shard-000009.h5"]


def test_schema_version_mismatch(ds):
    _h5_edit(ds / "shard-000000.h5", lambda f: f.attrs.__setitem__("schema_version", 99))
    _resync(ds, "shard-000000.h5")
    _rewrite_manifest(ds, lambda d: d.update(schema_version=99))
    rep = verify(ds)
    assert set(rep.bad_files) == {"manifest.json", "shard-000000.h5"}
    assert all("99" in r for _, r in rep.errors)


def test_several_bad_files_all_named_and_cli_exit_code(ds, capsys):
    (ds / "shard-000000.h5").unlink()
    p = ds / "shard-000002.h5"
    p.write_bytes(p.read_bytes()[:500])
    assert main(["verify", str(ds)]) == 1
    err = capsys.readouterr().err
    assert "shard-000000.h5: shard file missing" in err and "shard-000002.h5: truncated" in err


def test_info_and_cli_json(pristine, capsys):
    d = info(pristine)
    assert d["meshes"] == 24 and d["shards"] == 3 and d["splits"]["train"]["meshes"] == 24
    with h5py.File(pristine / "shard-000000.h5") as f:
        n = np.prod(f["views/heatmaps"].shape[:2])
        assert d["heatmap_bytes_per_view"] == round(
            f["views/heatmaps"].id.get_storage_size() / n, 1
        )
    assert main(["info", str(pristine), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config_hash"] == d["config_hash"]


def test_show_writes_png(pristine, tmp_path):
    out = tmp_path / "m.png"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "shards",
            "show",
            str(pristine),
            "--out",
            str(out),
            "--meshes",
            "2",
            "--views",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_manifest_totals_and_overlapping_ids(ds):
    def edit(d):
        d["meshes"] += 5
        d["shards"][1]["sample_id_first"] = d["shards"][0]["sample_id_last"]

    _rewrite_manifest(ds, edit)
    rep = verify(ds)
    reasons = [r for f, r in rep.errors if f == "manifest.json"]
    assert any("overlap" in r for r in reasons) and any("add up to 24" in r for r in reasons)
    assert "shard-000001.h5" in rep.bad_files  # its file disagrees with the edited range


def test_topology_corruption_and_other_checksum_algorithms(ds):
    from shards.manifest import load_manifest, write_manifest
    from shards.writer import file_checksum

    man = load_manifest(ds)
    for s in man.shards:  # a dataset written with blake2b checksums still verifies
        s.checksum = file_checksum(ds / s.name, "blake2b")
    write_manifest(ds, man.shards, dims=man.dims, config=man.config, skipped=man.skipped)
    assert verify(ds).ok, verify(ds).lines()
    p = ds / "topology.h5"
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    assert verify(ds).errors == [("topology.h5", "checksum mismatch")]
