"""Bare ``websockets`` relay: the floor every other target is measured against.

Room = request path (``/room/NAME``). Frames are forwarded as received bytes,
never parsed, so this measures the WebSocket stack and nothing else.
"""

from __future__ import annotations

import asyncio
import warnings

from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.peers import JOINED, install_uvloop, parse_args

rooms: dict[str, set[ServerConnection]] = {}


async def handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else "/"
    room = rooms.setdefault(path, set())
    room.add(ws)
    try:
        await ws.send(JOINED)
        while True:
            # decode=False skips a UTF-8 decode and re-encode per hop.
            data = await ws.recv(decode=False)
            if len(room) > 1:
                broadcast([p for p in room if p is not ws], data, text=True)
    except Exception:
        # A client going away mid-step is normal at the end of a step.
        pass
    finally:
        room.discard(ws)
        if not room:
            rooms.pop(path, None)


async def main(host: str, port: int) -> None:
    # compression=None: the documented ~14 KiB/socket baseline is without it,
    # and the floor should not pay for deflate.
    async with serve(handler, host, port, compression=None, max_size=1 << 20, backlog=4096):
        await asyncio.Future()


if __name__ == "__main__":
    args = parse_args(__doc__ or "")
    warnings.simplefilter("ignore", DeprecationWarning)
    install_uvloop()
    asyncio.run(main(args.host, args.port))
