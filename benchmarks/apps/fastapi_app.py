"""The FastAPI app: one endpoint that reads SQLite, logs twice, calls a stub, returns JSON."""

from __future__ import annotations

import logging
import sys
from typing import Any

import httpx
from common import STUB_URL, read_item
from fastapi import FastAPI, HTTPException, Request

logging.basicConfig(level=logging.INFO, stream=sys.stdout)
log = logging.getLogger("shop.items")

app = FastAPI()
http = httpx.AsyncClient(timeout=5)


@app.get("/items/{item_id}")
async def get_item(item_id: int, request: Request, q: str | None = None) -> dict[str, Any]:
    client = request.client.host if request.client else None
    log.info("item %s asked by %s (q=%s)", item_id, client, q)
    item = read_item(item_id)
    if item is None:
        raise HTTPException(status_code=404)
    stock = (await http.get(STUB_URL, params={"id": item_id})).json()
    log.info("item %s served", item_id)
    return {"id": item[0], "name": item[1], "price": item[2], "stock": stock["stock"]}
