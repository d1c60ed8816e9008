"""Saving matplotlib figures the same way everywhere in the pipeline's pictures."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, out: str | Path, dpi: int = 110) -> Path:
    """Lay out ``fig``, write it to ``out`` (parents created), close it, return the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
