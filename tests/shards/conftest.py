import pytest

from shards.testing import make_fake_dataset


@pytest.fixture(scope="session")
def fake_ds(tmp_path_factory):
    """Small dataset: 3 train shards + 1 val shard, 4 views, masks on."""
    root = tmp_path_factory.mktemp("fake_ds")
    return make_fake_dataset(
        root, n_meshes=90, views=4, res=32, nv=60, masks=True, shards=4, seed=3, val_shards=1
    )
