"""The demo builds batches that went through the checks, so a newcomer sees a funnel."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from datasets.models import Batch, CheckResult, Sample


def test_the_demo_shows_checked_batches_with_a_funnel(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out = StringIO()
    call_command("demo", stdout=out)

    batches = list(Batch.objects.filter(dataset__slug="demo").order_by("pk"))
    assert [b.method for b in batches] == ["grounded", "paraphrase", "template"]
    for batch in batches:
        assert batch.status == Batch.Status.READY
        assert batch.checks_finished_at is not None
        samples = Sample.objects.filter(batch=batch)
        assert samples.exists()
        assert not samples.filter(status=Sample.Status.PENDING).exists()
        assert CheckResult.objects.filter(batch=batch).count() == samples.count() * 5
        assert f"Demo batch {batch.pk}" in out.getvalue()
    assert Sample.objects.filter(batch=batches[0], status=Sample.Status.ACCEPTED).exists()
    assert batches[1].diversity["flags"][-1] == "paraphrase_only"
    # The template's contact details: rejected by safety, with the reason.
    rejected = CheckResult.objects.filter(batch=batches[2], kind="safety", passed=False)
    assert rejected.exists()
    assert all("pii:email" in r.detail for r in rejected)

    call_command("demo", stdout=StringIO())  # again: the batches are kept, not repeated
    assert Batch.objects.filter(dataset__slug="demo").count() == 3
