from __future__ import annotations

from django.apps import AppConfig


def _on_batch_checks_finished(sender, batch, **kwargs) -> None:
    """A batch is READY: build its spot-check queue in a worker, after commit."""
    from review.tasks import queue_build_task

    queue_build_task.delay_on_commit(batch.pk)


class ReviewConfig(AppConfig):
    name = "review"

    def ready(self) -> None:
        from datasets.signals import batch_checks_finished

        batch_checks_finished.connect(
            _on_batch_checks_finished, dispatch_uid="review.queue_build_on_checks_finished"
        )
