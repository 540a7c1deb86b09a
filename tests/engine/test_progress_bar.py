"""Progress bars only on a terminal: a log file gets log lines, not the bar's carriage-return frames (the subprocess
run in tests/test_custom_keypoint_set_e2e.py checks a whole training log)."""

import os

from hrnet_pose.engine.outputs import progress_bar_enabled


def test_progress_bar_only_when_the_stream_is_a_terminal(tmp_path):
    with open(tmp_path / "run.log", "w") as log_file:
        assert not progress_bar_enabled(True, log_file)
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w") as terminal:
            assert progress_bar_enabled(True, terminal)
            assert not progress_bar_enabled(False, terminal)  # ENGINE.PROGRESS_BAR False wins
    finally:
        os.close(master)
    closed = open(tmp_path / "closed.log", "w")
    closed.close()
    assert not progress_bar_enabled(True, closed)
