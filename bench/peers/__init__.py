"""Reference relays the benchmark compares chatserver against.

Each one is started as ``python -m bench.peers.NAME --host H --port P`` and
speaks the same tiny room protocol (see ``bench/README.md``): connect to a room,
get ``{"type":"joined"}`` once you are in it, and every text frame you send is
forwarded unchanged to the other members. None of them stores anything.
"""

from __future__ import annotations

import argparse

JOINED = '{"type":"joined"}'


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser.parse_args()


def install_uvloop() -> None:
    # Every peer gets the same event loop as uvicorn's "auto" choice, so the
    # comparison is between frameworks, not between loops.
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()
