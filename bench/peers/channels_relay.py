"""Django Channels relay with the in-memory channel layer, on uvicorn.

Room = URL path segment (``/room/NAME``). The consumer joins a group and
``group_send``s every frame; the handler skips the sender. Settings live here
so no Django project is needed.
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["channels"],
    DATABASES={},
    USE_TZ=True,
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            # The default capacity (100) silently drops group messages once a
            # receiver lags; raised so overload shows up as latency and a lower
            # delivered rate rather than as unexplained loss.
            "CONFIG": {"capacity": 100_000, "expiry": 60},
        }
    },
)
django.setup()

import uvicorn  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from bench.peers import JOINED, install_uvloop, parse_args  # noqa: E402


class RelayConsumer(AsyncWebsocketConsumer):
    room: str

    async def connect(self) -> None:
        self.room = "room-" + str(self.scope["url_route"]["kwargs"]["room"])
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()
        await self.send(text_data=JOINED)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(
            self.room, {"type": "relay.message", "text": text_data, "sender": self.channel_name}
        )

    async def relay_message(self, event: dict[str, Any]) -> None:
        if event["sender"] != self.channel_name:
            await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {"websocket": URLRouter([re_path(r"^room/(?P<room>[\w.-]+)$", RelayConsumer.as_asgi())])}
)

if __name__ == "__main__":
    args = parse_args(__doc__ or "")
    install_uvloop()
    uvicorn.run(
        application,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="off",
        backlog=4096,
    )
