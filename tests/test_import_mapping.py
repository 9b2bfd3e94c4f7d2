"""The column mapping: its text form, its checks, and the template the form starts from."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from datasets.importing.mapping import (
    mapping_check,
    mapping_clean,
    mapping_format,
    mapping_parse,
    mapping_template,
)
from datasets.services.datasets import DEFAULT_SCHEMA

TEXT = """
# TruthfulQA
input.question = Question
expected.answer = Best Answer
expected.correct = Correct Answers
tags.topic = Category
tags.locale = "en"
id =
difficulty = 'hard'
"""
MAPPING = {
    "id": "",
    "input": {"question": "Question"},
    "expected": {"answer": "Best Answer", "correct": "Correct Answers"},
    "tags": {"topic": "Category", "locale": {"const": "en"}},
    "difficulty": {"const": "hard"},
}


def test_it_parses_the_text_form():
    assert mapping_parse(TEXT) == MAPPING


def test_it_formats_a_mapping_back_to_text_that_parses_the_same():
    text = mapping_format(MAPPING)
    assert text.splitlines()[0] == "id ="
    assert 'tags.locale = "en"' in text.splitlines()
    assert mapping_parse(text) == MAPPING


def test_it_keeps_quotes_and_hashes_that_belong_to_names_and_constants():
    parsed = mapping_parse('input.question = Question #2\ntags.locale = "a \\"b\\" # c"')
    assert parsed["input"] == {"question": "Question #2"}
    assert parsed["tags"] == {"locale": {"const": 'a "b" # c'}}


def test_an_empty_mapping_is_automatic():
    assert mapping_parse("") == {}
    assert mapping_parse("# only comments\n\n") == {}
    assert mapping_parse(mapping_template(schema=DEFAULT_SCHEMA, tag_dimensions={"t": []})) == {}


def test_the_template_names_the_schema_fields_and_tag_dimensions():
    text = mapping_template(schema=DEFAULT_SCHEMA, tag_dimensions={"topic": [], "locale": []})
    assert "# input.question = question" in text
    assert "# expected.answer = answer" in text
    assert "# tags.locale = locale" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("input.question Question", "Line 1: write target = column"),
        ("answer = Best Answer", "Line 1: 'answer' is not a target"),
        ("input. = x", "Line 1: 'input.' is not a target"),
        ("input.q = A\ninput.q = B", "Line 2: input.q is mapped twice (lines 1 and 2)"),
        ("expected.answer =", "Line 1: expected.answer needs a column name or a constant"),
        ('tags.x = "unclosed\\"', "Line 1: the quoted constant"),
    ],
)
def test_it_names_the_line_of_a_mistake(text, message):
    with pytest.raises(ValidationError) as caught:
        mapping_parse(text)
    assert caught.value.messages[0].startswith(message)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"inputs": {}}, "Unknown mapping target 'inputs'"),
        ({"input": "Question"}, "input must be an object"),
        ({"input": {"q": 3}}, "input.q must name a column"),
        ({"id": {"column": "x"}}, "id must name a column"),
    ],
)
def test_it_refuses_malformed_mapping_dicts(mapping, message):
    with pytest.raises(ValidationError, match=message):
        mapping_clean(mapping)


def test_it_checks_tags_against_the_dataset():
    dimensions = {"topic": ["law"], "locale": []}
    mapping_check({"tags": {"topic": {"const": "law"}, "locale": "L"}}, tag_dimensions=dimensions)
    with pytest.raises(ValidationError, match="no tag dimension 'mood'"):
        mapping_check({"tags": {"mood": "M"}}, tag_dimensions=dimensions)
    with pytest.raises(ValidationError, match="'tax' is not an allowed value"):
        mapping_check({"tags": {"topic": {"const": "tax"}}}, tag_dimensions=dimensions)
    with pytest.raises(ValidationError, match="Map at least one input field"):
        mapping_check({"input": {}}, tag_dimensions=dimensions)


def test_the_import_service_offers_the_text_form_too():
    from datasets.services import imports

    assert imports.mapping_parse(TEXT) == MAPPING
    assert imports.mapping_parse(imports.mapping_format(MAPPING)) == MAPPING
