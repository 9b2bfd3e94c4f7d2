"""Admin: review settings are edited here; queues, decisions and the audit log are read-only
(decisions are append-only rows, changed only through the review services)."""

from __future__ import annotations

from django.contrib import admin

from review.models import AuditEntry, Decision, ReviewItem, ReviewQueue, ReviewSettings


@admin.register(ReviewSettings)
class ReviewSettingsAdmin(admin.ModelAdmin):
    list_display = (
        "dataset",
        "sample_rate",
        "min_per_stratum",
        "overlap_share",
        "judge_kappa_min",
        "judge_min_decisions",
    )
    list_select_related = ("dataset",)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReviewQueue)
class ReviewQueueAdmin(ReadOnlyAdmin):
    list_display = ("id", "dataset", "batch", "seed", "sample_rate", "created_at")
    list_select_related = ("dataset", "batch")


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = ("id", "queue", "sample_id", "copy", "reason", "state", "claimed_by")
    list_filter = ("state", "reason")
    list_select_related = ("queue__batch", "claimed_by")
    show_full_result_count = False
    raw_id_fields = ("sample",)


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ("id", "queue_id", "sample_id", "reviewer", "action", "reason", "created_at")
    list_filter = ("action", "via")
    list_select_related = ("reviewer",)
    show_full_result_count = False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "actor", "action", "summary")
    list_filter = ("action",)
    list_select_related = ("actor",)
    show_full_result_count = False
