"""python-socketio relay (ASGI app on uvicorn).

The client names its room in the namespace-connect auth payload
(``40{"room":"r1"}``); every ``msg`` event is emitted to the room, skipping the
sender. This is the idiomatic Socket.IO chat pattern.
"""

from __future__ import annotations

from typing import Any

import socketio
import uvicorn

from bench.peers import install_uvloop, parse_args

sio = socketio.AsyncServer(
    async_mode="asgi", cors_allowed_origins="*", logger=False, engineio_logger=False
)
room_of: dict[str, str] = {}


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    room = auth.get("room", "lobby") if isinstance(auth, dict) else "lobby"
    room_of[sid] = room
    await sio.enter_room(sid, room)


@sio.event
async def disconnect(sid: str, *args: Any) -> None:
    room_of.pop(sid, None)


@sio.on("msg")
async def on_msg(sid: str, data: Any) -> None:
    await sio.emit("msg", data, room=room_of.get(sid), skip_sid=sid)


app = socketio.ASGIApp(sio)

if __name__ == "__main__":
    args = parse_args(__doc__ or "")
    install_uvloop()
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", lifespan="off", backlog=4096
    )
