"""The view: reads SQLite, logs twice, calls a stub, returns JSON."""

from __future__ import annotations

import logging

import requests
from common import STUB_URL, read_item
from django.http import Http404, HttpRequest, JsonResponse

log = logging.getLogger("shop.items")
http = requests.Session()


def get_item(request: HttpRequest, item_id: int) -> JsonResponse:
    log.info(
        "item %s asked by %s (q=%s)", item_id, request.META.get("REMOTE_ADDR"), request.GET.get("q")
    )
    item = read_item(item_id)
    if item is None:
        raise Http404
    stock = http.get(STUB_URL, params={"id": item_id}, timeout=5).json()
    log.info("item %s served", item_id)
    return JsonResponse({"id": item[0], "name": item[1], "price": item[2], "stock": stock["stock"]})
