"""The Flask app: one endpoint that reads SQLite, logs twice, calls a stub, returns JSON."""

from __future__ import annotations

import logging
import sys

import requests
from common import STUB_URL, read_item
from flask import Flask, Response, abort, jsonify, request

logging.basicConfig(level=logging.INFO, stream=sys.stdout)
log = logging.getLogger("shop.items")

app = Flask(__name__)
http = requests.Session()


@app.get("/items/<int:item_id>")
def get_item(item_id: int) -> Response:
    log.info("item %s asked by %s (q=%s)", item_id, request.remote_addr, request.args.get("q"))
    item = read_item(item_id)
    if item is None:
        abort(404)
    stock = http.get(STUB_URL, params={"id": item_id}, timeout=5).json()
    log.info("item %s served", item_id)
    return jsonify(id=item[0], name=item[1], price=item[2], stock=stock["stock"])
