"""Saving matplotlib figures the same way everywhere (rig, plan, shard montage, previews,
trainer figures, ablation tables). In ``cameras/``, the lowest package that draws one."""

from __future__ import annotations

from pathlib import Path


def save_figure(
    fig,
    out: str | Path,
    dpi: float | str = 110,
    rect: tuple[float, float, float, float] | None = None,
    layout: bool = True,
    **savefig,
) -> Path:
    """Lay out ``fig`` (``tight_layout``, within ``rect`` if given; ``layout=False`` when the
    caller already did), write it to ``out`` (parents created), close it, return the path.
    ``savefig``: more keywords for ``Figure.savefig`` (e.g. ``facecolor``)."""
    import matplotlib.pyplot as plt

    if layout:
        fig.tight_layout(**({} if rect is None else {"rect": rect}))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, **savefig)
    plt.close(fig)
    return out
