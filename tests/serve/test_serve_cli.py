"""tools/serve.py: flags, the non-loopback warning, user errors as exit status 2, and the real command started as a
process with --workers 2 and a key from the environment, asked over HTTP and stopped."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from hrnet_pose.errors import run_cli
from hrnet_pose.serve.cli import bind_warning, build_settings, is_loopback, main, parse_args
from hrnet_pose.serve.settings import API_KEY_ENV

from testpaths import QUICKSTART_WEIGHTS, QUICKSTART_YAML, REPO


def test_flags_become_settings(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    from hrnet_pose.serve import cli

    args = cli.parse_args(["--cfg", QUICKSTART_YAML, "--max-body-mb", "2", "--max-queue", "5", "--det-model", "none",
                           "TEST.FLIP_TEST", "True"])
    assert args.opts == ["TEST.FLIP_TEST", "True"] and args.host == "127.0.0.1" and args.port == 8000
    s = build_settings(args)
    assert s.max_body_bytes == 2 << 20 and s.max_queue == 5 and s.model_name == "quickstart (random weights)"
    assert s.api_key == "from-env"
    assert "from-env" not in cli.build_parser().format_help()  # --help never shows the key


def test_binding_beyond_loopback_without_a_key_warns():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    assert bind_warning("127.0.0.1", "") is None and bind_warning("0.0.0.0", "key") is None
    assert "without an API key" in bind_warning("0.0.0.0", "")


@pytest.mark.parametrize("argv, text", [(["--port", "-1"], "--port"), (["--workers", "0"], "--workers"),
                                        (["--max-queue", "0"], "--max-queue")])
def test_bad_flags_exit_2_with_one_line(argv, text, capsys):
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_with_two_workers(tmp_path):
    port = _free_port()
    env = dict(os.environ, **{API_KEY_ENV: "cli-key", "PYTHONPATH": os.pathsep.join(
        [os.path.join(REPO, "lib"), os.environ.get("PYTHONPATH", "")])})
    cmd = [sys.executable, os.path.join(REPO, "tools", "serve.py"), "--cfg", QUICKSTART_YAML, "--weights",
           QUICKSTART_WEIGHTS, "--backend", "torch", "--det-model", "none", "--device", "cpu", "--port", str(port),
           "--workers", "2", "--log-level", "warning"]
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, up = time.monotonic() + 180, False
        while time.monotonic() < deadline and proc.poll() is None and not up:
            try:
                up = httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.5)
        assert up, (tmp_path / "serve.log").read_text()[-2000:]
        assert httpx.get(base + "/v1/models", timeout=30).status_code == 401
        models = httpx.get(base + "/v1/models", headers={"X-API-Key": "cli-key"}, timeout=60).json()
        assert models["models"][0]["name"] == "synthetic_quickstart_hrnet"
        assert models["models"][0]["weights"] == QUICKSTART_WEIGHTS
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
