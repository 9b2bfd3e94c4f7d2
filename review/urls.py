from __future__ import annotations

from django.urls import path

from review import views

app_name = "review"
urlpatterns = [
    path("", views.queue_list, name="queues"),
    path("<slug:slug>/batches/<int:batch_pk>/", views.batch_queue, name="batch"),
    path("<slug:slug>/batches/<int:batch_pk>/build/", views.batch_queue_build, name="build"),
    path("<slug:slug>/queues/<int:pk>/", views.queue_detail, name="queue"),
    path("<slug:slug>/queues/<int:pk>/work/", views.work, name="work"),
    path("<slug:slug>/queues/<int:pk>/undo/", views.undo, name="undo"),
    path("<slug:slug>/queues/<int:pk>/items/<int:item_pk>/decide/", views.decide, name="decide"),
    path("<slug:slug>/queues/<int:pk>/bulk/", views.bulk, name="bulk"),
    path("<slug:slug>/queues/<int:pk>/reassign/", views.reassign, name="reassign"),
    path("<slug:slug>/queues/<int:pk>/add/", views.add_samples, name="add"),
    path("<slug:slug>/queues/<int:pk>/audit/", views.audit, name="audit"),
]
