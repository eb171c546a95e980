"""A small Starlette app: sync endpoints (a thread pool), calls downstream with urllib3."""

import logging
import os

import urllib3
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

log = logging.getLogger("compat.app")
http = urllib3.PoolManager()


def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


def hello(request: Request) -> PlainTextResponse:
    log.info("compat hello")
    answer = http.request("GET", os.environ["STUB_URL"] + "/down")
    return PlainTextResponse("hello " + answer.data.decode())


def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("compat boom")


app = Starlette(routes=[Route("/ping", ping), Route("/hello", hello), Route("/boom", boom)])
