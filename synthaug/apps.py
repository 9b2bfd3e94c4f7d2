from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SynthaugConfig(AppConfig):
    name = "synthaug"
    verbose_name = "synthaug"

    def ready(self) -> None:
        from synthaug.roles import roles_sync

        post_migrate.connect(roles_sync, dispatch_uid="synthaug.roles_sync")
