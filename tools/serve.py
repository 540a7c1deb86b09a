"""Serve HRNet poses over HTTP: a REST API, a browser webcam page and a WebSocket stream.

    pip install -e .[serve]
    python tools/serve.py --weights litehrnet_18_256x192 --det-model ssdlite [--host 127.0.0.1 --port 8000]
        [--api-key KEY] [--workers 2] [--cors-origin https://example.org]

Then open http://127.0.0.1:8000/ (the webcam page), http://127.0.0.1:8000/docs (the API), or
`curl -F image=@person.jpg http://127.0.0.1:8000/v1/pose`. See README "Serve" and `python tools/serve.py --help`.
User errors print one line and exit with status 2 (`--debug` shows the traceback).
"""

import sys

from hrnet_pose.errors import run_cli
from hrnet_pose.serve.cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
