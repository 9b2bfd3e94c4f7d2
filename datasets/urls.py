from __future__ import annotations

from django.urls import path

from datasets.views import browse, imports

app_name = "datasets"
urlpatterns = [
    path("", browse.dataset_list, name="list"),
    path("new/", browse.dataset_new, name="new"),
    path("<slug:slug>/", browse.dataset_detail, name="detail"),
    path("<slug:slug>/samples/<int:pk>/", browse.sample_detail, name="sample"),
    path("<slug:slug>/documents/", browse.document_list, name="documents"),
    path("<slug:slug>/documents/<int:pk>/", browse.document_detail, name="document"),
    path("<slug:slug>/import/", imports.import_new, name="import_new"),
    path("<slug:slug>/imports/", imports.import_list, name="imports"),
    path("<slug:slug>/imports/<int:pk>/", imports.import_detail, name="import_detail"),
    path("<slug:slug>/imports/<int:pk>/confirm/", imports.import_confirm, name="import_confirm"),
    path(
        "<slug:slug>/imports/<int:pk>/errors.csv", imports.import_errors_csv, name="import_errors"
    ),
]
