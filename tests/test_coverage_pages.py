"""The coverage page, its targets page and refresh: permissions, gaps, pictures, speed."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from datasets.models import Batch, CoverageState, CoverageTarget, SourceDocument
from datasets.services.coverage import coverage_counts_refresh
from tests.factories import make_sample, make_samples, row_ids

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert(1)</script>"><svg onload=alert(2)>'


def url(dataset, name="coverage", **query):
    base = reverse(f"datasets:{name}", args=[dataset.slug])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def fill_links(html: str) -> list[dict[str, list[str]]]:
    found = re.findall(r'href="(/datasets/[^"]+/batches/new/\?[^"]+)"', html)
    return [parse_qs(urlsplit(link.replace("&amp;", "&")).query) for link in found]


@pytest.fixture
def counted(dataset):
    """A dataset with law/hard short of its target, health/easy full, and kept counts."""
    dataset.coverage_default_target = 10
    dataset.save()
    make_samples(dataset, 4, tags={"topic": "law", "locale": "de"}, difficulty="hard")
    make_samples(dataset, 12, tags={"topic": "health", "locale": "en"}, difficulty="easy")
    make_samples(dataset, 2, tags={"locale": "en"}, difficulty="easy")  # no topic
    make_samples(dataset, 1, tags={"topic": "", "locale": "en"}, difficulty="easy")
    coverage_counts_refresh(dataset_id=dataset.pk)
    return dataset


# --- who sees what ------------------------------------------------------------------------


def test_members_see_the_matrix_outsiders_get_404_and_anonymous_log_in(
    counted, alice_client, bob_client, charlie_client, client
):
    assert alice_client.get(url(counted)).status_code == 200
    assert bob_client.get(url(counted)).status_code == 200
    assert charlie_client.get(url(counted)).status_code == 404
    assert charlie_client.get(url(counted, "coverage_targets")).status_code == 404
    assert charlie_client.post(url(counted, "coverage_refresh")).status_code == 404
    assert client.get(url(counted)).status_code == 302


def test_only_leads_get_fill_buttons_targets_and_refresh(counted, alice_client, bob_client):
    lead = alice_client.get(url(counted)).content.decode()
    annotator = bob_client.get(url(counted)).content.decode()
    assert "Fill this gap" in lead
    assert fill_links(lead)
    assert "Fill this gap" not in annotator
    assert not fill_links(annotator)
    assert "Targets and settings" not in annotator
    assert bob_client.get(url(counted, "coverage_targets")).status_code == 403
    assert bob_client.post(url(counted, "coverage_refresh")).status_code == 403
    # The form itself refuses annotators too, whatever link they type.
    assert bob_client.get(reverse("datasets:batch_new", args=[counted.slug])).status_code == 403


def test_the_dataset_page_links_to_coverage(counted, bob_client):
    page = bob_client.get(reverse("datasets:detail", args=[counted.slug])).content.decode()
    assert url(counted) in page


# --- the matrix ---------------------------------------------------------------------------


def test_fill_this_gap_prefills_slice_difficulty_method_and_the_gap(counted, alice_client):
    links = fill_links(alice_client.get(url(counted, dims="topic")).content.decode())
    law_hard = [q for q in links if q["tag.topic"] == ["law"] and q["difficulty"] == ["hard"]]
    assert law_hard == [
        {"tag.topic": ["law"], "difficulty": ["hard"], "method": ["paraphrase"], "count": ["6"]}
    ]
    adversarial = [q for q in links if q["difficulty"] == ["adversarial"]]
    assert adversarial
    assert all(q["method"] == ["adversarial"] for q in adversarial)
    # health/easy met its target (12 of 10): no button there.
    assert not [q for q in links if q["tag.topic"] == ["health"] and q["difficulty"] == ["easy"]]
    # The batch form opens filled in from such a link.
    form = alice_client.get(
        reverse("datasets:batch_new", args=[counted.slug])
        + "?tag.topic=law&difficulty=hard&method=paraphrase&count=6"
    )
    assert form.status_code == 200
    assert form.context["form"].initial["count"] == "6"


def test_it_suggests_grounded_where_documents_exist_and_template_for_locales(counted, alice_client):
    SourceDocument.objects.create(
        dataset=counted, title="Statutes", text="...", content_hash="h1", tags={"topic": "law"}
    )
    links = fill_links(alice_client.get(url(counted, dims="topic,locale")).content.decode())
    methods = {
        (q["tag.topic"][0], q["tag.locale"][0], q["difficulty"][0]): q["method"][0] for q in links
    }
    assert methods[("law", "de", "hard")] == "grounded"
    assert methods[("health", "de", "medium")] == "template"  # no document; varies by locale
    assert methods[("law", "de", "adversarial")] == "adversarial"


def test_crossed_view_counts_cells_and_targets_belong_to_their_view(counted, alice_client):
    CoverageTarget.objects.create(
        dataset=counted, slice_key='{"locale": "de", "topic": "law"}', difficulty="hard", target=4
    )
    crossed = alice_client.get(url(counted, dims="topic,locale")).context["coverage"]
    assert crossed.dimensions == ("topic", "locale")
    cell = crossed.matrix.cell(("law", "de"), "hard")
    assert (cell.real, cell.target, cell.gap) == (4, 4, 0)
    single = alice_client.get(url(counted, dims="topic")).context["coverage"]
    assert single.matrix.cell(("law",), "hard").target == 10  # the default there


def test_untagged_real_samples_are_counted_and_listed(counted, alice_client):
    response = alice_client.get(url(counted, dims="topic"))
    coverage = response.context["coverage"]
    assert coverage.untagged_real == 3
    html = response.content.decode()
    link = re.search(r'href="(/datasets/truthful/\?origin=real&amp;untagged=topic)"', html)
    assert link, "the page links to the untagged samples"
    listed = alice_client.get(link.group(1).replace("&amp;", "&"))
    assert len(row_ids(listed)) == 3
    assert all(not s.tags.get("topic") for s in listed.context["page"].items)


def test_cells_over_the_synthetic_ceiling_are_flagged(dataset, alice_client):
    batch = Batch.objects.create(dataset=dataset, method="paraphrase", requested_count=3)
    make_sample(dataset, tags={"topic": "law"}, difficulty="hard")
    for _ in range(3):
        make_sample(
            dataset, origin="synthetic", batch=batch, tags={"topic": "law"}, difficulty="hard"
        )
    coverage_counts_refresh(dataset_id=dataset.pk)
    response = alice_client.get(url(dataset, dims="topic"))
    coverage = response.context["coverage"]
    flagged = [
        (row.key, c.difficulty) for row in coverage.rows for c in row.cells if c.over_ceiling
    ]
    assert flagged == [(("law",), "hard")]
    html = response.content.decode()
    assert "over the ceiling" in html
    assert "75% !" in html  # the share heatmap marks the cell
    dataset.synthetic_ceiling = 0.8
    dataset.save()
    assert alice_client.get(url(dataset, dims="topic")).context["coverage"].over_ceiling_cells == 0


def test_before_after_shows_which_gaps_a_batch_closed(dataset, alice_client):
    dataset.coverage_default_target = 5
    dataset.save()
    make_samples(dataset, 2, tags={"topic": "law"}, difficulty="hard")
    batch = Batch.objects.create(
        dataset=dataset,
        method="grounded",
        requested_count=4,
        target_tags={"topic": "law"},
        target_difficulty="hard",
        why_synthetic="Only two real hard law questions exist.",
    )
    for status in ("accepted", "accepted", "accepted", "pending"):
        make_sample(
            dataset,
            origin="synthetic",
            batch=batch,
            tags={"topic": "law"},
            difficulty="hard",
            status=status,
        )
    coverage_counts_refresh(dataset_id=dataset.pk)
    response = alice_client.get(url(dataset, dims="topic", batch=batch.pk))
    coverage = response.context["coverage"]
    assert coverage.compared == batch
    [change] = coverage.changes
    assert (change.row, change.difficulty) == (("law",), "hard")
    assert (change.gap_before, change.gap_after, change.closed) == (3, 0, 3)
    assert change.over_ceiling_after  # 3 of 5 approved are synthetic, over 0.5
    html = response.content.decode()
    assert 'id="before-after"' in html
    assert "closed" in html
    # The batch is listed with its cell and its four answers.
    law = next(row for row in coverage.rows if row.key == ("law",))
    assert [b.pk for b in next(c for c in law.cells if c.difficulty == "hard").batches] == [
        batch.pk
    ]
    assert "Only two real hard law questions exist." in html
    # Another dataset's batch is not compared.
    other = alice_client.get(url(dataset, dims="topic", batch=batch.pk + 999))
    assert other.context["coverage"].compared is None


def test_before_counting_the_page_says_so_and_offers_a_refresh(dataset, alice_client):
    html = alice_client.get(url(dataset)).content.decode()
    assert "have not been built yet" in html
    assert "Refresh counts" in html


def test_refresh_queues_one_rebuild(dataset, alice_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = alice_client.post(url(dataset, "coverage_refresh"), {"dims": "locale"})
    assert response.status_code == 302
    assert response.url == url(dataset, dims="locale")
    assert len(callbacks) == 1
    assert CoverageState.objects.get(dataset=dataset).queued_at is not None


def test_a_dataset_without_dimensions_says_what_to_do(alice, alice_client):
    from datasets.services.datasets import dataset_create

    bare = dataset_create(name="Bare", slug="bare", created_by=alice, tag_dimensions={})
    html = alice_client.get(url(bare)).content.decode()
    assert "no tag dimensions" in html


# --- targets and settings -----------------------------------------------------------------


def test_a_lead_sets_settings_and_cell_targets(counted, alice_client):
    response = alice_client.post(
        url(counted, "coverage_targets"),
        {
            "save_settings": "1",
            "dims": "topic",
            "settings-default_dims": ["topic", "locale"],
            "settings-default_target": "7",
            "settings-ceiling": "0.25",
        },
    )
    assert response.status_code == 302
    counted.refresh_from_db()
    assert (counted.coverage_dimensions, counted.coverage_default_target) == (
        ["topic", "locale"],
        7,
    )
    assert counted.synthetic_ceiling == 0.25

    page = alice_client.get(url(counted, "coverage_targets", dims="topic"))
    form = page.context["targets_form"]
    data = {"save_targets": "1", "dims": "topic"}
    for i in range(form.count):
        data[f"targets-k{i}"] = form[f"k{i}"].initial
        data[f"targets-c{i}"] = ""
    law_hard = next(
        i
        for i in range(form.count)
        if form[f"k{i}"].initial == '["{\\"topic\\": \\"law\\"}", "hard"]'
    )
    data[f"targets-c{law_hard}"] = "40"
    assert alice_client.post(url(counted, "coverage_targets"), data).status_code == 302
    cell = (
        alice_client.get(url(counted, dims="topic"))
        .context["coverage"]
        .matrix.cell(("law",), "hard")
    )
    assert (cell.target, cell.gap) == (40, 36)

    data[f"targets-c{law_hard}"] = "-3"
    refused = alice_client.post(url(counted, "coverage_targets"), data)
    assert refused.status_code == 200
    assert "nothing was saved" in refused.content.decode()
    data[f"targets-c{law_hard}"] = ""  # blank: back to the default
    alice_client.post(url(counted, "coverage_targets"), data)
    assert not CoverageTarget.objects.filter(dataset=counted).exists()


def test_settings_refuse_a_ceiling_outside_zero_to_one(counted, alice_client):
    response = alice_client.post(
        url(counted, "coverage_targets"),
        {"save_settings": "1", "settings-default_target": "5", "settings-ceiling": "1.5"},
    )
    assert response.status_code == 200
    assert response.context["settings_form"].errors["ceiling"]


# --- hostile tags -------------------------------------------------------------------------


def test_hostile_tag_values_render_escaped_in_html_and_svg(dataset, alice_client):
    make_samples(dataset, 2, tags={"topic": "law", "locale": HOSTILE}, difficulty="easy")
    make_samples(dataset, 1, tags={"topic": "law", "locale": "\u202eevil\u200b"}, difficulty="easy")
    coverage_counts_refresh(dataset_id=dataset.pk)
    response = alice_client.get(url(dataset, dims="locale,topic"))
    html = response.content.decode()
    assert "<script>alert(1)" not in html
    assert "<svg onload" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "U+202E" in html  # the bidi override is shown, not obeyed
    svg = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert svg
    assert all("onload" not in s.replace("svg onload=alert", "") for s in svg)
    assert all("style=" not in s for s in svg)
    assert any("&lt;script&gt;" in s for s in svg)
    # The fill link carries the value URL-encoded inside a quoted attribute.
    assert any(q.get("tag.locale") == [HOSTILE] for q in fill_links(html))


# --- speed --------------------------------------------------------------------------------


def _populate(dataset, *, per_cell: int, topics: list[str], batches: int) -> None:
    dataset.tag_dimensions = {"topic": topics, "locale": ["en", "de"]}
    dataset.save()
    for topic in topics:
        for locale in ("en", "de"):
            for difficulty in ("easy", "hard"):
                make_samples(
                    dataset,
                    per_cell,
                    tags={"topic": topic, "locale": locale},
                    difficulty=difficulty,
                )
    for n in range(batches):
        batch = Batch.objects.create(
            dataset=dataset,
            method="paraphrase",
            requested_count=2,
            target_tags={"topic": topics[n % len(topics)], "locale": "en"},
            target_difficulty="hard",
        )
        make_sample(
            dataset,
            origin="synthetic",
            batch=batch,
            tags={"topic": topics[n % len(topics)], "locale": "en"},
            difficulty="hard",
        )
    coverage_counts_refresh(dataset_id=dataset.pk)


def test_the_page_costs_the_same_queries_whatever_the_size(dataset, alice_client):
    _populate(dataset, per_cell=1, topics=["law"], batches=1)
    first = Batch.objects.filter(dataset=dataset).earliest("id").pk
    page = url(dataset, dims="topic,locale", batch=first)
    alice_client.get(page)  # warm the session and permission caches
    with CaptureQueriesContext(connection) as small:
        alice_client.get(page)
    _populate(dataset, per_cell=5, topics=["law", "health", "history", "tax"], batches=12)
    with CaptureQueriesContext(connection) as large:
        response = alice_client.get(page)
    assert len(large) == len(small) <= 12
    coverage = response.context["coverage"]
    assert len(coverage.rows) == 4 * 2
    assert len(coverage.batches) == 13
    assert not any("datasets_sample" in q["sql"] for q in large.captured_queries)


# --- the funnel component -----------------------------------------------------------------


def test_the_funnel_draws_each_stage_with_its_numbers():
    html = Template("{% load charts %}{% funnel stages %}").render(
        Context({"stages": [("Generated", 50), ("Format", 48), ("Judge <b>", 30)]})
    )
    assert html.count("<rect") == 3
    assert "<title>Format: 48 (2 fewer than the stage before)</title>" in html
    assert "Judge &lt;b&gt;" in html
    assert "<b>" not in html
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)"', html)]
    assert widths[0] > widths[1] > widths[2] > 0
    assert '<th scope="row">Format</th><td class="num">48</td><td class="num">2</td>' in html
    empty = Template("{% load charts %}{% funnel stages %}").render(Context({"stages": []}))
    assert "No stages to show yet" in empty


def test_samples_without_a_difficulty_are_called_out(dataset, alice_client):
    make_samples(dataset, 3, tags={"topic": "law"})
    coverage_counts_refresh(dataset_id=dataset.pk)
    response = alice_client.get(url(dataset, dims="topic"))
    assert response.context["coverage"].unset_difficulty == 3
    assert "have no difficulty yet" in response.content.decode()
    assert "?difficulty=unset" in response.content.decode()


def test_the_view_form_crosses_two_dimensions(counted, bob_client):
    response = bob_client.get(url(counted, dims="locale", cross="topic"))
    assert response.context["coverage"].dimensions == ("locale", "topic")
    form = response.context["view_form"]
    assert (form["dims"].value(), form["cross"].value()) == ("locale", "topic")
    # Unknown or repeated dimensions fall back to what the dataset has.
    fallback = bob_client.get(url(counted, dims="colour", cross="colour"))
    assert fallback.context["coverage"].dimensions == ("locale",)
