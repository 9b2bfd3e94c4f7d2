"""The queue page's tables, formatted in Python: the item rows and the agreement rows.

Fifty rows of eight cells through the template engine cost more CPU than everything else
on the queue page together (each variable a context lookup, each filter a call); built
here they cost a tenth of that. Formatting only, as every template tag here: the rows come
from ``review.selectors.item_page``. Every value is escaped (sample text through
``show_invisible``, so bidi and zero-width characters show as badges); the only markup is
the fixed strings below.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

# The standard library's: Django's escape is this one behind a lazy-string check that costs
# more than the escaping, 250 times a list. Every value here is a str.
from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

from datasets.templatetags.display import clip, show_invisible
from review.models import ReviewItem
from review.selectors import ItemRow
from synthaug.engine.agreement import Agreement

register = template.Library()

ROW_TEXT_CHARS = 120
_REASONS = dict(ReviewItem.Reason.choices)
_STATES = dict(ReviewItem.State.choices)


def _username(name: str | None, default: str) -> str:
    return escape(name) if name is not None else default


@register.simple_tag
def item_rows(items: Iterable[ItemRow], can_manage: bool, sample_base: str) -> SafeString:
    """The ``<tr>`` of each item (a checkbox for the bulk form when ``can_manage``)."""
    base = escape(sample_base)
    rows = []
    for item in items:
        pk, sample_id = int(item.pk), int(item.sample_id)
        select = (
            f'<td><input type="checkbox" name="item" value="{pk}" form="bulk-form" '
            f'aria-label="Select item {pk}"></td>'
            if can_manage
            else ""
        )
        rows.append(
            f'<tr id="item-{pk}">{select}<td>#{pk}</td>'
            f'<td class="cell-text"><a href="{base}{sample_id}/">#{sample_id}</a> '
            f"{show_invisible(clip(item.text_head, ROW_TEXT_CHARS))}</td>"
            f"<td>{escape(_REASONS.get(item.reason, item.reason))}</td>"
            f"<td>{escape(item.stratum)}</td>"
            f"<td>{escape(_STATES.get(item.state, item.state))}</td>"
            f"<td>{_username(item.claimed_by, '')}</td>"
            f"<td>{_username(item.assigned_to, 'anyone')}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="8" class="muted">No items match.</td></tr>')
    return mark_safe("\n".join(rows))  # noqa: S308 - every value above is escaped


_CENT = Decimal("0.01")


def _two(value: float) -> str:
    """Two decimals, rounded half up as the ``floatformat:2`` filter does."""
    return str(Decimal(repr(value)).quantize(_CENT, ROUND_HALF_UP))


def _with_interval(value: float, low: float, high: float) -> str:
    return f'{_two(value)} <span class="muted">[{_two(low)}, {_two(high)}]</span>'


def _agreement_row(label: str, a: Agreement) -> str:
    if a.accuracy is not None:
        accuracy = _with_interval(a.accuracy, a.accuracy_low, a.accuracy_high)
    else:
        accuracy = '<span class="muted">no decisions yet</span>'
    if a.kappa is not None:
        kappa = _with_interval(a.kappa, a.kappa_low, a.kappa_high)
    elif a.n:
        kappa = '<span class="muted">undefined (one verdict for all)</span>'
    else:
        kappa = '<span class="muted">—</span>'
    return (
        f"<tr><th>{escape(label)}</th><td>{int(a.n)}</td><td>{accuracy}</td>"
        f"<td>{kappa}</td><td>{int(a.disagree)}</td></tr>"
    )


@register.simple_tag
def agreement_rows(report) -> SafeString:
    """The agreement table's rows: the judge overall, per check, per stratum, and between
    reviewers (``report`` is a ``review.selectors.AgreementReport``)."""
    rows = [_agreement_row("Judge (overall)", report.judge)]
    rows += [_agreement_row(f"Check: {kind}", a) for kind, a in report.by_check.items()]
    rows += [_agreement_row(f"Stratum: {name}", a) for name, a in report.by_stratum.items()]
    rows.append(_agreement_row("Between reviewers (overlap)", report.people))
    return mark_safe("\n".join(rows))  # noqa: S308 - labels escaped, numbers formatted here
