"""A small FastAPI app: logs inside a request, calls a downstream service with httpx."""

import logging
import os

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()
log = logging.getLogger("compat.app")


@app.get("/ping", response_class=PlainTextResponse)
async def ping() -> str:
    return "pong"


@app.get("/hello", response_class=PlainTextResponse)
async def hello() -> str:
    log.info("compat hello")
    async with httpx.AsyncClient() as client:
        answer = await client.get(os.environ["STUB_URL"] + "/down")
    return f"hello {answer.text}"


@app.get("/boom")
async def boom() -> str:
    raise RuntimeError("compat boom")
