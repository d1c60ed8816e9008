"""AMASS reader: bad-file messages, round trip of the generated archive, SMPL-X layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import amass
from pipeline.amass import AmassFileError, Skip, load_archive, load_sequence, scan
from pipeline.synth.archive import generate_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("amass_small")
    generate_archive(root, seed=3, small=True)
    return root


def _smplh_arrays(n: int = 20, rng=None) -> dict:
    rng = rng or np.random.default_rng(0)
    return {
        "trans": rng.normal(size=(n, 3)),
        "gender": np.array("female"),
        "mocap_framerate": np.array(120.0),
        "betas": rng.normal(size=16),
        "dmpls": rng.normal(size=(n, 8)),
        "poses": rng.normal(scale=0.3, size=(n, 156)),
    }


def _write(path: Path, arrays: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------------------------------------
# bad files: each case gets its own one-line message naming the file


def _truncated(p: Path) -> None:
    _write(p, _smplh_arrays())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _text(p: Path) -> None:
    p.write_text("this is not a numpy archive\n")


def _missing_poses(p: Path) -> None:
    a = _smplh_arrays()
    del a["poses"]
    _write(p, a)


def _width150(p: Path) -> None:
    a = _smplh_arrays()
    a["poses"] = a["poses"][:, :150]
    _write(p, a)


def _nan(p: Path) -> None:
    a = _smplh_arrays()
    a["poses"][7, 40] = np.nan
    _write(p, a)


def _zero_frames(p: Path) -> None:
    a = _smplh_arrays()
    a["poses"], a["trans"], a["dmpls"] = np.zeros((0, 156)), np.zeros((0, 3)), np.zeros((0, 8))
    _write(p, a)


def _alien(p: Path) -> None:
    a = _smplh_arrays()
    a["gender"] = np.array("alien")
    _write(p, a)


def _trans_mismatch(p: Path) -> None:
    a = _smplh_arrays()
    a["trans"] = a["trans"][:-1]
    _write(p, a)


def _bad_fps(p: Path) -> None:
    a = _smplh_arrays()
    a["mocap_framerate"] = np.array(0.0)
    _write(p, a)


def _pickled_gender(p: Path) -> None:
    a = _smplh_arrays()
    a["gender"] = np.array(["female", None], dtype=object)
    _write(p, a)


BAD_CASES = [
    ("truncated", _truncated, "truncated or corrupt npz archive", True),
    ("text", _text, "not an npz archive (no zip signature)", True),
    ("missing_poses", _missing_poses, "missing key 'poses'", True),
    ("width150", _width150, "'poses' has shape (20, 150), expected (N, 156)", True),
    ("nan", _nan, "'poses' contains NaN or Inf (1 frames, first at frame 7)", False),
    ("zero_frames", _zero_frames, "zero frames", True),
    ("alien", _alien, "unknown gender 'alien'", True),
    ("trans_mismatch", _trans_mismatch, "'trans' has shape (19, 3), expected (20, 3)", True),
    ("bad_fps", _bad_fps, "mocap_framerate must be a positive number", True),
    ("pickled", _pickled_gender, "'gender' holds pickled Python objects", True),
]


@pytest.mark.parametrize(("name", "make", "reason", "structural"), BAD_CASES)
def test_bad_file_message(tmp_path, name, make, reason, structural):
    p = tmp_path / "Sub" / "subj" / f"{name}_poses.npz"
    p.parent.mkdir(parents=True)
    make(p)
    with pytest.raises(AmassFileError) as ei:
        load_sequence(p, tmp_path)
    msg = str(ei.value)
    assert msg.startswith(f"{p}: "), msg
    assert reason in msg, msg
    assert "\n" not in msg
    assert ei.value.path == p
    if structural:  # the cheap header scan already catches it
        with pytest.raises(AmassFileError, match="^" + str(p).replace(".", r"\.")):
            amass.scan_file(p, tmp_path)
    else:
        amass.scan_file(p, tmp_path)  # values are only read by load_sequence


def test_bad_files_skip_or_raise(tmp_path):
    good = _write(tmp_path / "A" / "s1" / "good_poses.npz", _smplh_arrays())
    for name, make, _, _ in BAD_CASES:
        p = tmp_path / "B" / "s2" / f"{name}_poses.npz"
        p.parent.mkdir(parents=True, exist_ok=True)
        make(p)
    with pytest.raises(AmassFileError):
        load_archive(tmp_path)
    seqs, skips = load_archive(tmp_path, on_error="skip")
    assert [s.path for s in seqs] == [good.relative_to(tmp_path).as_posix()]
    assert len(skips) == len(BAD_CASES)
    assert all(isinstance(s, Skip) and s.path.startswith("B/s2/") for s in skips)
    by_name = {Path(s.path).name.removesuffix("_poses.npz"): s.reason for s in skips}
    for name, _, reason, _ in BAD_CASES:
        assert reason in by_name[name]
    infos, scan_skips = scan(tmp_path, on_error="skip")
    # the NaN file is structurally fine, so the cheap scan lists it
    assert sorted(i.path for i in infos) == ["A/s1/good_poses.npz", "B/s2/nan_poses.npz"]
    assert len(scan_skips) == len(BAD_CASES) - 1
    with pytest.raises(ValueError, match="on_error"):
        scan(tmp_path, on_error="ignore")


# ---------------------------------------------------------------------------------------------
# round trip of the generated archive


def test_discovery_lists_sequences_only(archive):
    files = amass.discover(archive)
    rel = [p.relative_to(archive).as_posix() for p in files]
    assert rel == sorted(rel)
    assert all(r.endswith(("_poses.npz", "_stageii.npz")) for r in rel)
    on_disk = sorted(p.name for p in archive.rglob("*.npz"))
    assert "shape.npz" in on_disk and "neutral_stagei.npz" in on_disk  # present, not listed
    assert not any(r.endswith(("shape.npz", "_stagei.npz")) for r in rel)
    assert len({r.split("/")[0] for r in rel}) >= 3


def test_round_trip_generated_archive(archive):
    seqs, skips = load_archive(archive)
    infos, _ = scan(archive)
    assert skips == []
    assert [i.path for i in infos] == [s.path for s in seqs]
    for info, seq in zip(infos, seqs):
        raw = np.load(archive / seq.path)
        subset, subject, _ = seq.path.split("/")
        assert (seq.subset, seq.subject) == (subset, subject) == (info.subset, info.subject)
        assert (info.n_frames, info.fps, info.gender) == (seq.n_frames, seq.fps, seq.gender)
        assert seq.gender == str(raw["gender"])
        np.testing.assert_array_equal(seq.trans, raw["trans"])
        np.testing.assert_array_equal(seq.betas, raw["betas"])
        assert seq.poses.shape == (seq.n_frames, 156) and seq.poses.dtype == np.float64
        if seq.model_type == "smplh":
            np.testing.assert_array_equal(seq.poses, raw["poses"])
            np.testing.assert_array_equal(seq.dmpls, raw["dmpls"])
            assert seq.fps == float(raw["mocap_framerate"])
            assert seq.jaw_pose is None and seq.eye_pose is None
        else:
            assert seq.fps == float(raw["mocap_frame_rate"])
        assert info.duration == pytest.approx(seq.n_frames / seq.fps)
        assert seq.notes == []


def test_frame_batches(archive):
    seq = load_sequence(next(iter(amass.discover(archive))), archive)
    idx = np.array([0, 5, seq.n_frames - 1, 5])
    b = seq.frames(idx)
    np.testing.assert_array_equal(b["poses"], seq.poses[idx])
    np.testing.assert_array_equal(b["trans"], seq.trans[idx])
    assert b["betas"].shape == (4, 16)
    np.testing.assert_array_equal(b["betas"], np.tile(seq.betas, (4, 1)))
    with pytest.raises(IndexError, match=seq.path):
        seq.frames([seq.n_frames])
    alone = load_sequence(archive / seq.path)  # no root: AMASS's <Subset>/<Subject>/<file>
    assert (alone.path, alone.subset, alone.subject) == (seq.path, seq.subset, seq.subject)
    rf = amass.read_frames(archive, seq.path, [1, 2])
    np.testing.assert_array_equal(rf["poses"], seq.poses[[1, 2]])
    assert rf["gender"] == seq.gender and rf["fps"] == seq.fps


# ---------------------------------------------------------------------------------------------
# SMPL-X layout


def test_smplx_layout_read(archive):
    stageii = sorted(archive.rglob("*_stageii.npz"))
    assert stageii
    raw = np.load(stageii[0])
    seq = load_sequence(stageii[0], archive)
    assert seq.model_type == "smplx" and seq.gender == str(raw["gender"])
    expect = np.concatenate([raw["root_orient"], raw["pose_body"], raw["pose_hand"]], axis=1)
    np.testing.assert_array_equal(seq.poses, expect)
    np.testing.assert_array_equal(seq.jaw_pose, raw["pose_jaw"])
    np.testing.assert_array_equal(seq.eye_pose, raw["pose_eye"])
    np.testing.assert_array_equal(seq.pose_hand, raw["pose_hand"])
    assert seq.fps == float(raw["mocap_frame_rate"])
    b = seq.frames([0, 1])
    np.testing.assert_array_equal(b["jaw_pose"], raw["pose_jaw"][:2])
    assert b["eye_pose"].shape == (2, 6)


def test_smplx_full_pose_fallback_and_betas_padding(tmp_path):
    """A SMPL-X file with only ``poses`` (N, 165), 10 betas and bytes gender."""
    rng = np.random.default_rng(1)
    n = 12
    full = rng.normal(scale=0.2, size=(n, 165))
    p = _write(
        tmp_path / "X" / "s" / "clip_stageii.npz",
        {
            "poses": full,
            "trans": rng.normal(size=(n, 3)),
            "betas": rng.normal(size=10),
            "gender": np.array(b"male"),
            "mocap_frame_rate": np.array(60.0),
            "surface_model_type": np.array("smplx"),
        },
    )
    seq = load_sequence(p, tmp_path)
    assert seq.model_type == "smplx" and seq.gender == "male" and seq.fps == 60.0
    # SMPL-X order: root, 21 body, jaw, left eye, right eye, 15 left hand, 15 right hand
    np.testing.assert_array_equal(seq.poses[:, :66], full[:, :66])
    np.testing.assert_array_equal(seq.poses[:, 66:], full[:, 75:])
    np.testing.assert_array_equal(seq.jaw_pose, full[:, 66:69])
    np.testing.assert_array_equal(seq.eye_pose, full[:, 69:75])
    assert seq.betas.shape == (16,)
    np.testing.assert_array_equal(seq.betas[10:], 0.0)
    assert any("padded from 10 to 16" in n for n in seq.notes)


def test_betas_truncated_with_note(tmp_path):
    a = _smplh_arrays()
    a["betas"] = np.arange(300.0)
    seq = load_sequence(_write(tmp_path / "S" / "s" / "x_poses.npz", a), tmp_path)
    np.testing.assert_array_equal(seq.betas, np.arange(16.0))
    assert any("truncated from 300 to 16" in n for n in seq.notes)
