"""The orders app's URLs."""

from django.urls import path

from . import views

urlpatterns = [
    path("orders/<int:order_id>/fulfil/", views.fulfil_order, name="fulfil-order"),
    path("runs/<str:run_id>/", views.run_progress, name="run-progress"),
]
