"""Message templates: Jinja2 in a sandbox, over the patient context and nothing else.

A MESSAGE node's `message`, each of its `templates` and its `subject` are templates. They are
checked when a journey is defined (`template_errors`: syntax) and rendered when a run reaches
the node (`render`). The environment is Jinja2's immutable sandbox with no globals (no
`range`, no `lipsum`, no `cycler`), undefined names are errors rather than empty text, and
`*` on text or lists and `**` are bounded, so a template can neither reach outside the context
nor make an enormous message. Pure: no I/O, no clock, the same text for the same context.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_RENDERED = 10_000
"""The longest message a template may render, as a MESSAGE node's `message` may be."""
_MAX_REPEAT = 1_000


class TemplateRenderError(ValueError):
    """A template that does not render for this context: a missing field, a refused operation,
    or text over `MAX_RENDERED`. Its message names the kind of failure, never a value."""


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            raise SecurityError("the power operator is not allowed in a message template")
        for seq, times in ((left, right), (right, left)):
            repeated = isinstance(seq, str | list | tuple) and isinstance(times, int)
            if repeated and times > _MAX_REPEAT:
                raise SecurityError("a repetition over 1000 in a message template")
        return operator.mul(left, right)


@cache
def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.clear()
    return env


def template_errors(text: str) -> str | None:
    """Why `text` is not a valid template (its syntax), or None."""
    try:
        _environment().parse(text)
    except TemplateSyntaxError as exc:
        return f"not a valid template: {exc.message} (line {exc.lineno})"
    return None


def render(text: str, context: Mapping[str, Any]) -> str:
    """`text` rendered over the patient context; `TemplateRenderError` when it cannot be.
    Text without template syntax is returned as it is (Jinja2 would normalize its newlines)."""
    if not any(mark in text for mark in ("{{", "{%", "{#")):
        return text
    try:
        rendered = _compiled(text).render(dict(context))
    except TemplateError as exc:  # UndefinedError, SecurityError, syntax
        raise TemplateRenderError(type(exc).__name__) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateRenderError(type(exc).__name__) from None
    if len(rendered) > MAX_RENDERED:
        raise TemplateRenderError(f"rendered text over {MAX_RENDERED} characters")
    return rendered


@cache
def _compiled(text: str) -> Any:
    return _environment().from_string(text)


def choose(templates: Mapping[str, str], fallback: str, language: Any) -> tuple[str, str | None]:
    """The template for the patient's `language` (an exact tag, else its primary subtag:
    `es-MX` takes `es`), and the language it is in; else `fallback`, in no named language."""
    if isinstance(language, str) and language:
        for tag in (language, language.split("-")[0]):
            if tag in templates:
                return templates[tag], tag
            lowered = {k.lower(): k for k in templates}
            if tag.lower() in lowered:
                key = lowered[tag.lower()]
                return templates[key], key
    return fallback, None
