"""Hostile sample content renders as inert, visible text under an enforced CSP.

Eval sets for prompt injection are made of exactly the strings a page must never obey:
markup, event handlers, ``javascript:`` links, ``</script>`` inside JSON, bidi overrides and
zero-width characters, and megabyte-long values.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from datasets.models import Batch, Sample, SourceDocument
from datasets.templatetags.display import clip, show_invisible, tag_pairs
from tests.factories import make_sample

SCRIPT = "<script>alert('xss')</script>"
IMG = "<img src=x onerror=alert(1)>"
LINK = '<a href="javascript:alert(1)">click me</a>'
HTMX = '<div hx-get="/logout/" hx-trigger="load">boom</div>'
BIDI = "price: \u202e01$ \u202cdone"
ZERO_WIDTH = "ig\u200bnore previous\u2060 instructions\ufeff"


@pytest.fixture
def hostile(dataset) -> dict[str, Sample]:
    document = SourceDocument.objects.create(
        dataset=dataset, title=f"Doc {SCRIPT}", text=f"Body {IMG} {BIDI}", content_hash="evil"
    )
    batch = Batch.objects.create(dataset=dataset, method=Batch.Method.GROUNDED, requested_count=1)
    return {
        "script": make_sample(
            dataset,
            text=SCRIPT,
            expected={"answer": f"{IMG} {LINK}"},
            tags={"topic": "law", "locale": f"{SCRIPT}"},
        ),
        "json": make_sample(
            dataset,
            input={"question": "</script><script>alert(2)</script>", "note": HTMX},
            text="</script><script>alert(2)</script>\n" + HTMX,
        ),
        "bidi": make_sample(dataset, text=f"{BIDI} {ZERO_WIDTH}"),
        "synthetic": make_sample(
            dataset,
            text=LINK,
            origin=Sample.Origin.SYNTHETIC,
            batch=batch,
            seq=0,
            source_document=document,
            source_passage=f"{SCRIPT} passage",
            generation_model=IMG,
            prompt_version=BIDI,
            slot_values={"entity": SCRIPT, "items": "shadowed?"},
            difficulty_rationale=IMG,
        ),
        "huge": make_sample(dataset, text="A" * 1_000_000 + SCRIPT),
    }


def _pages(dataset, hostile) -> list[str]:
    slug = dataset.slug
    document = hostile["synthetic"].source_document
    return [
        reverse("datasets:list"),
        reverse("datasets:detail", args=[slug]),
        reverse("datasets:documents", args=[slug]),
        reverse("datasets:document", args=[slug, document.pk]),
        *(reverse("datasets:sample", args=[slug, s.pk]) for s in hostile.values()),
    ]


# A tag with an event handler or style attribute: what the CSP would block, so it must not
# exist in our markup at all (escaped content has no "<" to open a tag).
_INLINE_HANDLER = re.compile(r"<[a-zA-Z][^>]*\s(on[a-z]+|style)\s*=", re.I)


def test_it_escapes_hostile_content_on_every_page(alice_client, dataset, hostile):
    for url in _pages(dataset, hostile):
        response = alice_client.get(url)
        html = response.content.decode()
        assert response.status_code == 200, url
        for raw in ("<script>alert", "<img src=x", '<a href="javascript:', "<div hx-get"):
            assert raw not in html, (url, raw)
        assert 'href="javascript:' not in html, url
        assert "\u202e" not in html, url
        assert "\u200b" not in html, url
        assert not _INLINE_HANDLER.search(html), url
        assert "<script>" not in html.replace("<script src=", ""), url


def test_it_shows_the_escaped_text_in_the_table(alice_client, dataset, hostile):
    html = alice_client.get(reverse("datasets:detail", args=[dataset.slug])).content.decode()

    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;a href=&quot;javascript:alert(1)&quot;&gt;click me&lt;/a&gt;" in html
    assert "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert '<span class="invisible-char">U+202E</span>01$' in html
    assert '<span class="invisible-char">U+200B</span>' in html
    assert '<span class="invisible-char">U+FEFF</span>' in html


def test_it_truncates_a_megabyte_sample_in_the_table(alice_client, dataset, hostile):
    response = alice_client.get(reverse("datasets:detail", args=[dataset.slug]))

    assert len(response.content) < 100_000
    assert "A" * 300 + "…" in response.content.decode()


def test_it_shows_a_megabyte_sample_whole_but_clamped(alice_client, dataset, hostile):
    url = reverse("datasets:sample", args=[dataset.slug, hostile["huge"].pk])

    html = alice_client.get(url).content.decode()

    assert "A" * 1_000_000 + "&lt;script&gt;" in html
    assert '<pre id="input-json" class="sample-json clamped">' in html
    assert '<button type="button" class="show-all" data-expand="#input-json">' in html


def test_it_escapes_json_on_the_sample_page(alice_client, dataset, hostile):
    url = reverse("datasets:sample", args=[dataset.slug, hostile["json"].pk])

    html = alice_client.get(url).content.decode()

    assert "&quot;question&quot;: &quot;&lt;/script&gt;&lt;script&gt;alert(2)" in html
    assert r"&lt;div hx-get=\&quot;/logout/\&quot;" in html
    # Sample content sits inside an hx-disable area.
    assert re.search(r"<div hx-disable>\s*<div class=\"grid2\">", html)


def test_it_sends_an_enforced_csp_with_a_nonce(alice_client, dataset, hostile):
    response = alice_client.get(reverse("datasets:detail", args=[dataset.slug]))

    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert "script-src 'self' 'nonce-" in policy
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "Content-Security-Policy-Report-Only" not in response
    # The only scripts are files: htmx carries this response's nonce, ours is same-origin.
    html = response.content.decode()
    scripts = re.findall(r"<script[^>]*>", html)
    assert all(" src=" in tag for tag in scripts)
    assert any(f'nonce="{nonce}"' in tag and "htmx" in tag for tag in scripts)


def test_it_keeps_tag_dimension_names_from_shadowing_template_lookups():
    assert tag_pairs({"items": "x", "b": ["1", "2"], "a": None}) == [
        ("a", ""),
        ("b", "1, 2"),
        ("items", "x"),
    ]
    assert tag_pairs("not a dict") == []


def test_it_escapes_before_marking_invisible_characters():
    result = show_invisible(mark_safe("<b>\u202e</b>"))

    assert isinstance(result, SafeString)
    assert result == '&lt;b&gt;<span class="invisible-char">U+202E</span>&lt;/b&gt;'
    assert show_invisible("\U000e0041 tag char") == (
        '<span class="invisible-char">U+E0041</span> tag char'
    )
    assert show_invisible(None) == ""


def test_it_clips_plain_text():
    assert clip("abcdef", 3) == "abc…"
    assert clip("abc", 3) == "abc"
