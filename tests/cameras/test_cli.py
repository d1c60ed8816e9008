"""``python -m cameras``: the rig as JSON and the top-down PNG."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cameras import make_rig
from cameras.__main__ import main


def test_rig_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rig", "--views", "8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    cams = doc["cameras"]
    assert len(cams) == 8
    keys = {"id", "name", "interpolated", "K", "dist", "R", "t", "width", "height"}
    assert all(keys <= set(c) for c in cams)
    assert [c["interpolated"] for c in cams] == [False] * 4 + [True] * 4
    rig = make_rig(8)
    np.testing.assert_array_equal(np.array([c["R"] for c in cams]), rig.R)
    assert np.array(cams[0]["K"]).shape == (3, 3) and len(cams[0]["dist"]) == 5


def test_rig_table_and_bad_views(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rig", "--views", "4"]) == 0
    out = capsys.readouterr().out
    assert "60457274" in out and "S1-C4" in out
    assert main(["rig", "--views", "0"]) == 2
    assert "views must be" in capsys.readouterr().err


def test_plot_png(tmp_path) -> None:
    out = tmp_path / "rig.png"
    res = subprocess.run(
        [sys.executable, "-m", "cameras", "plot", "--views", "8", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote" in res.stdout
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert img.shape[0] > 800 and img.shape[1] > 800
    # black (real) and green (interpolated) camera glyphs are both drawn
    black = (img.sum(-1) < 60).sum()
    green = ((img[..., 1] > 120) & (img[..., 0] < 60) & (img[..., 2] < 100)).sum()
    assert black > 500 and green > 500
