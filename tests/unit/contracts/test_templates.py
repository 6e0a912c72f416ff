"""Message templates: rendered over the patient context in a sandbox that reaches nothing else,
chosen by the patient's language, failing (never guessing) on a field the context lacks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeys_contracts.templates import (
    MAX_RENDERED,
    TemplateRenderError,
    choose,
    render,
    template_errors,
)

TEMPLATES = {"en": "Hello {{ first_name }}", "es": "Hola {{ first_name }}", "pt-BR": "Olá"}


def test_fields_of_the_context_are_rendered_nested_ones_too() -> None:
    context = {"first_name": "Ana", "address": {"city": "Lyon"}, "visits": [1, 2, 3]}
    text = "{{ first_name }} in {{ address.city }}, {{ visits | length }} visits"
    assert render(text, context) == "Ana in Lyon, 3 visits"


def test_a_field_the_context_lacks_fails_and_the_error_quotes_nothing() -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render("Dear {{ first_name }}, your {{ diagnosis }}", {"first_name": "Ana-secret"})
    assert str(caught.value) == "UndefinedError"


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ first_name.__class__.__init__.__globals__ }}",
        "{{ range(10) | list }}",
        "{{ lipsum() }}",
        "{{ cycler(1, 2).next() }}",
        "{{ 'x' * 100000 }}",
        "{{ [0] * 1000000 }}",
        "{{ 2 ** 100000 }}",
        "{{ first_name.upper.__self__ }}",
        "{% set d = {} %}{{ d.update({'a': 1}) }}",
        '{{ "x" * 1000 * 1000 * 1000 }}',
        '{{ "x" | center(999999999) }}',
        '{{ "x".ljust(999999999) }}',
        '{{ "%999999999d" | format(1) }}',
        '{{ "a".replace("a", "b" * 1000).replace("b", "c" * 1000) }}',
        "{% for a in first_name %}{% for b in first_name %}{% endfor %}{% endfor %}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "{{ " + "(" * 300 + "1" + ")" * 300 + " }}",
        "{{ first_name }}" * 2000,
    ],
)
def test_the_sandbox_refuses_to_reach_outside_the_context_or_blow_up(escape: str) -> None:
    with pytest.raises(TemplateRenderError):
        render(escape, {"first_name": "Anastasia"})


def test_a_rendered_message_longer_than_a_message_may_be_fails() -> None:
    with pytest.raises(TemplateRenderError):
        render("{{ text }}{{ text }}", {"text": "x" * MAX_RENDERED})


@pytest.mark.parametrize(
    ("language", "chosen"),
    [("es", "es"), ("es-MX", "es"), ("EN", "en"), ("pt-BR", "pt-BR"), ("pt-br", "pt-BR"),
     ("fr", None), (None, None), (42, None), ("", None)],
)  # fmt: skip
def test_the_patients_language_chooses_else_the_message(language: object, chosen: str) -> None:
    text, picked = choose(TEMPLATES, "Fallback", language)
    assert picked == chosen
    assert text == (TEMPLATES[chosen] if chosen else "Fallback")


def test_syntax_and_what_a_template_uses_are_checked_without_a_context() -> None:
    assert template_errors("Hello {{ first_name | title }}{% if vip %}!{% endif %}") is None
    assert template_errors("Hello {{ first_name") is not None
    assert template_errors("{% for x in visits %}{{ x }}{% endfor %}") == (
        "for loops are not allowed in a message template"
    )
    assert template_errors('{{ "x" | center(9) }}') is not None  # a refused filter
    assert template_errors("{{ " + "(" * 300 + "1" + ")" * 300 + " }}") == (
        "not a valid template: nested too deeply"
    )


@given(st.text(alphabet=st.characters(blacklist_characters="{}%#"), max_size=200))
def test_text_without_template_syntax_renders_as_itself(text: str) -> None:
    assert render(text, {}) == text
