"""One route."""

from __future__ import annotations

from django.urls import path

from djangoapp.views import get_item

urlpatterns = [path("items/<int:item_id>", get_item)]
