"""The heatmap codec the shards own: where it lives and what a dataset says it was built with."""

from __future__ import annotations

import pytest

from shards import heatmaps as codec


@pytest.mark.parametrize(
    ("dims", "config", "want"),
    [
        ({"R": 56}, {"render": {"sigma": None}}, (56, 2.0)),
        ({"R": 112}, {"render": {"res": 112}}, (112, 4.0)),  # no sigma key: the default rule
        ({"R": 56}, {"render": {"sigma": 1.5}}, (56, 1.5)),
        ({"R": 32}, {"fake": True}, (32, 2.0 * 32 / 56)),  # no render section (test datasets)
    ],
)
def test_dataset_codec_reads_res_and_sigma(dims, config, want):
    assert codec.dataset_codec(dims, config) == want


def test_dataset_codec_needs_the_resolution():
    with pytest.raises(ValueError, match="'R'"):
        codec.dataset_codec({"K": 17}, {})
