"""URL configuration: the orders app's JSON endpoints."""

from django.urls import include, path

urlpatterns = [
    path("", include("orders.urls")),
]
