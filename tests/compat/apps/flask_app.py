"""A small Flask app: logs inside a request, calls a downstream service with requests."""

import logging
import os

import requests
from flask import Flask

app = Flask(__name__)
log = logging.getLogger("compat.app")


@app.get("/ping")
def ping() -> str:
    return "pong"


@app.get("/hello")
def hello() -> str:
    log.info("compat hello")
    answer = requests.get(os.environ["STUB_URL"] + "/down", timeout=5)
    return f"hello {answer.text}"


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("compat boom")
