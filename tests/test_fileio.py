"""The one atomic-write helper: nothing under the final name until complete, ordinary permissions, cleanup on error."""

import os
import stat

import numpy as np
import pytest

from hrnet_pose.fileio import AtomicFile, atomic_path, atomic_write, temp_path_beside


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "a.json"
        atomic_write(str(out), lambda f: f.write("{}"))
        # a new file under umask 022 is 0644; mkstemp alone would leave 0600 (unreadable to the group)
        assert _mode(out) == 0o644
    finally:
        os.umask(old)


def test_atomic_write_error_leaves_nothing(tmp_path):
    out = tmp_path / "a.json"

    def fail(f):
        f.write("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(str(out), fail)
    assert os.listdir(tmp_path) == []


def test_atomic_path_keeps_extension_and_publishes(tmp_path):
    out = tmp_path / "sub" / "arr.npy"
    with atomic_path(str(out)) as tmp:
        assert tmp.endswith(".npy") and os.path.dirname(tmp) == str(out.parent)
        np.save(tmp, np.arange(3))
        assert not out.exists()
    assert np.array_equal(np.load(out), np.arange(3))
    assert os.listdir(out.parent) == ["arr.npy"]


def test_atomic_path_removes_partial_on_error(tmp_path):
    out = tmp_path / "v.mp4"
    out.write_text("previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(str(out)) as tmp:
            open(tmp, "w").write("partial")
            raise KeyboardInterrupt
    assert out.read_text() == "previous"
    assert os.listdir(tmp_path) == ["v.mp4"]


def test_atomic_file_commit_and_abort(tmp_path):
    out = tmp_path / "frames.jsonl"
    f = AtomicFile(str(out))
    f.write('{"frame": 0}\n')
    f.flush()
    assert not out.exists()
    f.commit()
    f.commit()  # idempotent
    assert out.read_text() == '{"frame": 0}\n'
    with pytest.raises(ValueError):
        f.write("late")

    out2 = tmp_path / "aborted.jsonl"
    with pytest.raises(RuntimeError):
        with AtomicFile(str(out2)) as g:
            g.write("x\n")
            raise RuntimeError("mid-stream failure")
    assert not out2.exists()
    assert sorted(os.listdir(tmp_path)) == ["frames.jsonl"]


def test_temp_path_is_hidden_and_unique(tmp_path):
    a, b = temp_path_beside(str(tmp_path / "x.json")), temp_path_beside(str(tmp_path / "x.json"))
    assert a != b and os.path.basename(a).startswith(".x.") and a.endswith(".json")
