"""URL configuration: the admin (runs under Tasktronaut > Runs) and the orders app's endpoints."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("orders.urls")),
]
