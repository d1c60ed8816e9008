"""shards.atomic: the one atomic writer (temporary name, fsync, rename)."""

import os

import pytest

from shards.atomic import atomic_path, temp_path, write_atomic


def test_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    write_atomic(target, "old\n")
    write_atomic(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_failed_write_leaves_target_and_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("kept\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_temporary_name_is_what_builds_and_verify_clean_up(tmp_path):
    import socket

    tmp = temp_path(tmp_path / "shard-000001.h5")
    assert tmp.parent == tmp_path and tmp.name.startswith("shard-000001.h5.tmp-")
    assert tmp.match("*.tmp-*")  # pipeline.build.units.clean_partial, shards.verify
    # unique across hosts sharing a folder (the pid alone repeats) and across calls
    host = socket.gethostname().split(".")[0]
    assert host.replace("_", "-") in tmp.name and f"-{os.getpid()}-" in tmp.name
    assert temp_path(tmp_path / "shard-000001.h5") != tmp
