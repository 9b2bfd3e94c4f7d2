from __future__ import annotations

from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "datasets"

    def ready(self) -> None:
        from datasets import receivers  # noqa: F401  (connects the signal receivers)

        # Connects the receivers that keep the coverage counts following the pipeline.
        from datasets.services import coverage  # noqa: F401
