# Appended to the urls.py that `django-admin startproject` wrote: three small views;
# /hello logs and calls a downstream service with urllib.request.
import logging
import os
import urllib.request

from django.http import HttpResponse


def ping(request):
    return HttpResponse("pong")


def hello(request):
    logging.getLogger("compat.app").info("compat hello")
    with urllib.request.urlopen(os.environ["STUB_URL"] + "/down", timeout=5) as answer:
        return HttpResponse("hello " + answer.read().decode())


def boom(request):
    raise RuntimeError("compat boom")


urlpatterns += [path("ping", ping), path("hello", hello), path("boom", boom)]  # noqa: F821
