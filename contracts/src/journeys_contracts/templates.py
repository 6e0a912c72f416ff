"""Message templates: Jinja2 in a sandbox, over the patient context and nothing else.

A MESSAGE node's `message`, each of its `templates` and its `subject` are templates. They are
checked when a journey is defined (`template_errors`) and rendered when a run reaches the node
(`render`). A template may substitute fields (`{{ first_name }}`, `{{ address.city }}`), apply
filters, and branch (`{% if %}`); it may not loop, define macros or blocks, or call methods
other than a few plain text ones. So rendering takes time in proportion to the template's own
length, and no template can make a large text: the environment is Jinja2's immutable sandbox
with no globals, undefined names are errors rather than empty text, repetition (`*`) and
padding are bounded, `**` is refused, and the output is cut off at `MAX_RENDERED` while it is
produced. Pure: no I/O, no clock, the same text for the same context.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_RENDERED = 10_000
"""The longest message a template may render, as a MESSAGE node's `message` may be."""
_MAX_REPEAT = 1_000

# Statements a message has no need of, and that could make rendering take long or grow large.
_REFUSED_NODES: dict[type[nodes.Node], str] = {
    nodes.For: "for loops", nodes.Macro: "macros", nodes.CallBlock: "call blocks",
    nodes.Block: "blocks", nodes.Extends: "extends", nodes.Include: "includes",
    nodes.Import: "imports", nodes.FromImport: "imports", nodes.FilterBlock: "filter blocks",
    nodes.Assign: "set", nodes.AssignBlock: "set", nodes.With: "with",
}  # fmt: skip
# Filters that pad, repeat, or format with a width: each could make a huge text from a small one.
_REFUSED_FILTERS = ("center", "indent", "wordwrap", "format", "batch", "slice", "filesizeformat")
# The only methods a template may call: plain text ones that never lengthen their text.
_SAFE_METHODS = frozenset({
    "upper", "lower", "title", "capitalize", "strip", "lstrip", "rstrip", "startswith",
    "endswith", "get", "keys", "values", "items", "isdigit", "isalpha",
})  # fmt: skip


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
            if repeated and (times > _MAX_REPEAT or len(seq) * max(times, 0) > MAX_RENDERED):
                raise SecurityError("a repetition too long for a message template")
        return operator.mul(left, right)

    def is_safe_callable(self, obj: Any) -> bool:
        return getattr(obj, "__name__", None) in _SAFE_METHODS and super().is_safe_callable(obj)


@lru_cache(maxsize=1)
def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.clear()
    for name in _REFUSED_FILTERS:
        env.filters.pop(name, None)
    return env


def _refused(text: str) -> str | None:
    """Why a parsed template uses something a message template may not; None if it does not."""
    for node in _environment().parse(text).find_all(tuple(_REFUSED_NODES)):
        return f"{_REFUSED_NODES[type(node)]} are not allowed in a message template"
    return None


def template_errors(text: str) -> str | None:
    """Why `text` is not a valid message template (its syntax, or what it uses), or None."""
    try:
        refused = _refused(text)
        if refused is None:
            _compiled(text)  # an unknown (or refused) filter is only found compiling
        return refused
    except TemplateSyntaxError as exc:  # and TemplateAssertionError: an unknown filter
        return f"not a valid template: {exc.message} (line {exc.lineno})"
    except (RecursionError, MemoryError):
        return "not a valid template: nested too deeply"


def render(text: str, context: Mapping[str, Any]) -> str:
    """`text` rendered over the patient context; `TemplateRenderError` when it cannot be.
    Text without template syntax is returned as it is (Jinja2 would normalize its newlines)."""
    if not any(mark in text for mark in ("{{", "{%", "{#")):
        return text
    try:
        if _refused(text) is not None:
            raise TemplateRenderError("refused")
        parts: list[str] = []
        length = 0
        for chunk in _compiled(text).generate(dict(context)):
            length += len(chunk)
            if length > MAX_RENDERED:
                raise TemplateRenderError(f"rendered text over {MAX_RENDERED} characters")
            parts.append(chunk)
    except TemplateError as exc:  # UndefinedError, SecurityError, syntax
        raise TemplateRenderError(type(exc).__name__) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError,
            MemoryError) as exc:  # fmt: skip
        if isinstance(exc, TemplateRenderError):
            raise
        raise TemplateRenderError(type(exc).__name__) from None
    return "".join(parts)


@lru_cache(maxsize=4096)
def _compiled(text: str) -> Any:
    return _environment().from_string(text)


def choose(templates: Mapping[str, str], fallback: str, language: Any) -> tuple[str, str | None]:
    """The template for the patient's `language` (an exact tag, else its primary subtag:
    `es-MX` takes `es`), and the language it is in; else `fallback`, in no named language."""
    if isinstance(language, str) and language:
        lowered = {k.lower(): k for k in templates}
        for tag in (language, language.split("-")[0]):
            if tag.lower() in lowered:
                key = lowered[tag.lower()]
                return templates[key], key
    return fallback, None
