"""cameras.plotting.save_figure: every PNG of the project is written through it."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cameras.plotting import save_figure  # noqa: E402


def test_save_figure_writes_closes_and_makes_parents(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "a" / "b" / "f.png", facecolor="white")
    assert out == tmp_path / "a" / "b" / "f.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    from PIL import Image

    assert Image.open(out).size == (220, 110)  # 2 x 1 inches at the default 110 dpi
