"""The built-in offline provider: generation and checks with no network, deterministic from a seed.

It serves the embedded default when no endpoint is configured, and is labelled as what it is:
every item carries `provider="offline"`, `model=OFFLINE_MODEL` and `version=OFFLINE_VERSION`,
which provenance records in place of an endpoint and model. The same inputs and seed give the
same outputs (within one `OFFLINE_VERSION`: change the version when outputs change).

- `template_expand`: fill `{slot}` placeholders with distinct combinations of slot values.
- `grounded_qa`: extractive question/answer pairs whose answer is a span of the passage
  (`passage[start:end] == answer`), asked from the sentence that contains it.
- `adversarial`: wrap or encode a text as an attack of a named kind, with the behaviour expected
  of a model under test.
- `paraphrase`: rule-based rewording (synonyms, contractions, clause order). Shallow by design;
  the low-information flag downstream will catch many of these, which is the honest outcome.
- `rule_checks`: the judge role without a model: format, lexical grounding, answer leakage,
  safety patterns and attack markers.

Pure functions over plain data: no Django, no network, no model.
"""

from __future__ import annotations

from synthaug.engine.offline.adversarial import ADVERSARIAL_KINDS, ATTACKS, adversarial
from synthaug.engine.offline.checks import attack_markers, grounding_score, rule_checks
from synthaug.engine.offline.grounded import grounded_qa, split_sentences
from synthaug.engine.offline.items import (
    OFFLINE_MODEL,
    OFFLINE_PROVIDER,
    OFFLINE_VERSION,
    AdversarialItem,
    CheckResult,
    GroundedItem,
    TemplateItem,
)
from synthaug.engine.offline.paraphrase import paraphrase
from synthaug.engine.offline.templates import template_expand, template_slots

__all__ = [
    "ADVERSARIAL_KINDS",
    "ATTACKS",
    "OFFLINE_MODEL",
    "OFFLINE_PROVIDER",
    "OFFLINE_VERSION",
    "AdversarialItem",
    "CheckResult",
    "GroundedItem",
    "TemplateItem",
    "adversarial",
    "attack_markers",
    "grounded_qa",
    "grounding_score",
    "paraphrase",
    "rule_checks",
    "split_sentences",
    "template_expand",
    "template_slots",
]
