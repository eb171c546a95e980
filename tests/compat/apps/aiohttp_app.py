"""A small aiohttp server (python -m aiohttp.web): calls downstream with aiohttp's client."""

import logging
import os

from aiohttp import ClientSession, web

log = logging.getLogger("compat.app")


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="pong")


async def hello(request: web.Request) -> web.Response:
    log.info("compat hello")
    async with ClientSession() as session, session.get(os.environ["STUB_URL"] + "/down") as answer:
        text = await answer.text()
    return web.Response(text=f"hello {text}")


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("compat boom")


def init(argv: list[str]) -> web.Application:
    app = web.Application()
    app.add_routes([web.get("/ping", ping), web.get("/hello", hello), web.get("/boom", boom)])
    return app
