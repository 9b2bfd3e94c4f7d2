from __future__ import annotations

from django.urls import path

from datasets.views import browse, coverage, dedup, generation, imports

app_name = "datasets"
urlpatterns = [
    path("", browse.dataset_list, name="list"),
    path("new/", browse.dataset_new, name="new"),
    path("<slug:slug>/", browse.dataset_detail, name="detail"),
    path("<slug:slug>/samples/<int:pk>/", browse.sample_detail, name="sample"),
    path(
        "<slug:slug>/samples/<int:pk>/duplicate/",
        dedup.sample_duplicate,
        name="sample_duplicate",
    ),
    path("<slug:slug>/documents/", browse.document_list, name="documents"),
    path("<slug:slug>/documents/<int:pk>/", browse.document_detail, name="document"),
    path("<slug:slug>/import/", imports.import_new, name="import_new"),
    path("<slug:slug>/imports/", imports.import_list, name="imports"),
    path("<slug:slug>/imports/<int:pk>/", imports.import_detail, name="import_detail"),
    path("<slug:slug>/imports/<int:pk>/confirm/", imports.import_confirm, name="import_confirm"),
    path(
        "<slug:slug>/imports/<int:pk>/errors.csv", imports.import_errors_csv, name="import_errors"
    ),
    # Coverage: the matrix, its targets, a manual refresh of the kept counts.
    path("<slug:slug>/coverage/", coverage.coverage, name="coverage"),
    path("<slug:slug>/coverage/targets/", coverage.coverage_targets, name="coverage_targets"),
    path("<slug:slug>/coverage/refresh/", coverage.coverage_refresh, name="coverage_refresh"),
    # Generation: batches and prompts.
    path("<slug:slug>/batches/", generation.batch_list, name="batches"),
    path("<slug:slug>/batches/new/", generation.batch_new, name="batch_new"),
    path("<slug:slug>/batches/estimate/", generation.batch_estimate, name="batch_estimate"),
    path("<slug:slug>/batches/<int:pk>/", generation.batch_detail, name="batch"),
    path("<slug:slug>/batches/<int:pk>/cancel/", generation.batch_cancel, name="batch_cancel"),
    path("<slug:slug>/batches/<int:pk>/resume/", generation.batch_resume, name="batch_resume"),
    path(
        "<slug:slug>/batches/<int:pk>/items/<int:item_pk>/retry/",
        generation.item_retry,
        name="batch_item_retry",
    ),
    path("<slug:slug>/prompts/", generation.prompt_list, name="prompts"),
    path("<slug:slug>/prompts/compare/", generation.prompt_compare, name="prompt_compare"),
    path("<slug:slug>/prompts/<int:pk>/", generation.prompt_detail, name="prompt"),
    path("<slug:slug>/prompts/<int:pk>/edit/", generation.prompt_edit, name="prompt_edit"),
]
