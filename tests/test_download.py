"""Downloads: a served file arrives whole and hash-checked; a wrong hash, a closed port, a server that accepts and never
answers, and one that stops mid-file each end in one `DownloadError` line naming the URL, with nothing left behind.

The servers are local (127.0.0.1), so the tests need no network. The timeout tests use a 1 s timeout and assert only
that the call raised; without a timeout they would hang.
"""

import hashlib
import http.server
import os
import socket
import threading

import pytest

from hrnet_pose.download import OFFLINE_ENV, DownloadError, download
from hrnet_pose.errors import format_user_error, is_user_error

PAYLOAD = bytes(range(256)) * 4099  # ~1 MB, more than one read chunk


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv(OFFLINE_ENV, raising=False)


@pytest.fixture()
def server(tmp_path):
    """A local http.server serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "weights-" "0123.pth").write_bytes(PAYLOAD)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def silent_port():
    """A port that accepts TCP connections (the kernel completes them into the backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture()
def closed_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused, as on a machine without the server
    return port


@pytest.fixture()
def stops_mid_file():
    """A server that sends the headers of a 1 MB file and 10 bytes of it, then either stalls or hangs up."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    done = threading.Event()
    mode = {"hang_up": False}

    def serve():
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(PAYLOAD) + PAYLOAD[:10])
            if not mode["hang_up"]:
                done.wait(30)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/file.pth", mode
    done.set()
    listener.close()


def _files(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _one_line(err: DownloadError, url: str, path: str) -> None:
    """What a tool prints: one error line naming the URL and the final path, one hint line saying where the file goes."""
    assert is_user_error(err)
    lines = format_user_error(err)
    assert len(lines) == 2 and lines[0].startswith(f"error: cannot download {url} to {path} (")
    assert lines[1].startswith("hint: ") and url in lines[1] and f"put it at {path}" in lines[1]


def _fails_in_one_line(url: str, path: str, timeout: float, match=None) -> None:
    """download(url, path) raises a DownloadError (whose message matches `match`, if given) printed as _one_line."""
    with pytest.raises(DownloadError, match=match) as info:
        download(url, path, timeout=timeout, progress=False)
    _one_line(info.value, url, path)


def test_served_file_arrives_whole_and_verified(server, tmp_path):
    url = server + "weights-0123.pth"
    path = str(tmp_path / "cache" / "weights.pth")
    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:8]
    assert download(url, path, hash_prefix=prefix, timeout=5, progress=False) == path
    assert open(path, "rb").read() == PAYLOAD
    assert _files(tmp_path / "cache") == ["weights.pth"]  # no temporary file left beside it


def test_wrong_hash_is_refused_and_leaves_no_file(server, tmp_path):
    url = server + "weights-0123.pth"
    path = str(tmp_path / "cache" / "weights.pth")
    wrong = "0" * 8 if not hashlib.sha256(PAYLOAD).hexdigest().startswith("0") else "f" * 8
    with pytest.raises(DownloadError, match=f"hash check.*should start with {wrong}") as info:
        download(url, path, hash_prefix=wrong, timeout=5, progress=False)
    assert info.value.url == url and info.value.path == path
    assert info.value.hint.startswith("retry") and path in info.value.hint
    assert _files(tmp_path / "cache") == []


def test_http_error_is_a_download_error(server, tmp_path):
    url = server + "missing.pth"
    path = str(tmp_path / "cache" / "missing.pth")
    _fails_in_one_line(url, path, timeout=5, match="404")
    assert _files(tmp_path / "cache") == []


def test_closed_port_gives_the_one_line_message(closed_port, tmp_path):
    url = f"http://127.0.0.1:{closed_port}/weights.pth"
    path = str(tmp_path / "cache" / "weights.pth")
    _fails_in_one_line(url, path, timeout=1)
    assert _files(tmp_path / "cache") == []


def test_server_that_never_answers_times_out(silent_port, tmp_path):
    url = f"http://127.0.0.1:{silent_port}/weights.pth"
    path = str(tmp_path / "cache" / "weights.pth")
    before = socket.getdefaulttimeout()
    _fails_in_one_line(url, path, timeout=1, match="timed out")
    assert socket.getdefaulttimeout() == before  # the timeout is the request's, not the process's
    assert _files(tmp_path / "cache") == []


@pytest.mark.parametrize("hang_up", [False, True], ids=["stalls", "hangs_up"])
def test_download_cut_mid_file_leaves_nothing(stops_mid_file, tmp_path, hang_up):
    url, mode = stops_mid_file
    mode["hang_up"] = hang_up
    path = str(tmp_path / "cache" / "file.pth")
    _fails_in_one_line(url, path, timeout=1)
    assert _files(tmp_path / "cache") == []  # neither the final file nor the partial temporary one


def test_offline_switch_forbids_the_download(monkeypatch, server, tmp_path):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    url = server + "weights-0123.pth"
    path = str(tmp_path / "cache" / "weights.pth")
    with pytest.raises(DownloadError, match=OFFLINE_ENV) as info:
        download(url, path, progress=False)
    _one_line(info.value, url, path)
    assert not os.path.exists(path)
