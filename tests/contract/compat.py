"""Is a new JSON Schema an additive evolution of an old one? Lists every breaking change.

Within a `vN`, readers still running the old version must read records the new version
writes, and new readers must read records already written. So the new schema may accept
nothing the old one refused, and must accept everything the old one accepted, with one
exception: a new optional property on an open object (old readers ignore unknown fields).
New top-level record types are the other addition, checked per file, not here: readers skip
types they do not know.

Hence flagged, besides removed properties and narrowed types:
- added enum or const values, and added union alternatives (a new node `type`, a new
  operator): an old reader refuses the record, or worse, must act on a value it does not
  know. Such a change needs every reader upgraded first, and is then listed, with its
  reason, in `contracts/schemas/published/accepted-changes.json`;
- any change to a type or format, widened as much as narrowed (an integer becoming a
  number, a field becoming nullable);
- any change to a constraint (`maxLength`, `maximum`, `minItems`, `pattern`, ...): relaxed,
  old readers refuse the new values; tightened, records already written may fail;
- a property newly required (old records lack it) or no longer required (old readers
  require it);
- an object closed (`additionalProperties: false`), or opened (old readers refuse the
  properties it now allows), and a property added to a closed object.

Optional fields appear as `anyOf: [X, {"type": "null"}]`, so `anyOf`/`oneOf` are read as
sets of alternatives; `$ref`s are followed within each document.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"))
# Keywords bounding values: a larger upper bound, a smaller lower bound, or a removed one
# relaxes; the rest (`pattern`, `multipleOf`, ...) relax or tighten in ways not worth ordering.
_UPPER = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_LOWER = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_OTHER = ("pattern", "multipleOf", "uniqueItems", "maxContains", "minContains",
          "propertyNames", "contentEncoding", "contentMediaType")  # fmt: skip


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every reason `new` cannot replace `old`, located by a JSON-path-like string."""
    checker = _Checker(old, new)
    checker.compare(old, new, "$")
    return checker.problems


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return "array" if isinstance(value, list) else "object"


def _types(branch: Schema) -> set[str]:
    declared = branch.get("type")
    if declared is not None:
        return set(declared) if isinstance(declared, list) else {declared}
    if "const" in branch:
        return {_json_type(branch["const"])}
    if "enum" in branch:
        return {_json_type(v) for v in branch["enum"]}
    if "properties" in branch or "additionalProperties" in branch:
        return {"object"}
    if "items" in branch:
        return {"array"}
    return {"any"}


def _allowed_values(branch: Schema) -> list[Any] | None:
    """The values a branch is limited to, or None when it is not limited to a list."""
    if "const" in branch:
        return [branch["const"]]
    return list(branch["enum"]) if "enum" in branch else None


def _label(branch: Schema, kind: str) -> str:
    """Names an alternative: by its `type` tag, its const value, or its title."""
    tag = branch.get("properties", {}).get("type", {}).get("const", branch.get("const"))
    return f"{kind}:{tag if tag is not None else branch.get('title', '')}"


class _Checker:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.roots = (old_root, new_root)
        self.problems: list[str] = []
        self._seen: set[tuple[str | None, str | None]] = set()

    def _resolve(self, side: int, node: Schema) -> tuple[Schema, str | None]:
        """Follow local `$ref`s; keywords next to a `$ref` (2020-12 allows them) win."""
        ref = None
        while "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#"):
                raise ValueError(f"only local $refs are supported, got {ref}")
            target: Any = self.roots[side]
            for part in filter(None, ref[1:].split("/")):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node, ref

    def _branches(self, side: int, node: Schema) -> list[Schema]:
        node, _ = self._resolve(side, node)
        alternatives = node.get("anyOf", []) + node.get("oneOf", [])
        if alternatives:
            return [b for alt in alternatives for b in self._branches(side, alt)]
        declared = node.get("type")
        if isinstance(declared, list):
            return [{**node, "type": t} for t in declared]
        return [node]

    def compare(self, old: Schema, new: Schema, path: str) -> None:
        (old, old_ref), (new, new_ref) = self._resolve(0, old), self._resolve(1, new)
        if old_ref or new_ref:
            if (old_ref, new_ref) in self._seen:
                return
            self._seen.add((old_ref, new_ref))
        old_branches, new_branches = self._branches(0, old), self._branches(1, new)
        old_types = set().union(*map(_types, old_branches))
        new_types = set().union(*map(_types, new_branches))
        if old_types != new_types:
            self.problems.append(
                f"{path}: type changed from {sorted(old_types)} to {sorted(new_types)}"
            )
            return
        for kind in sorted(old_types):
            olds = [b for b in old_branches if kind in _types(b)]
            news = [b for b in new_branches if kind in _types(b)]
            self._pair(olds, news, kind, path)

    def _pair(self, olds: list[Schema], news: list[Schema], kind: str, path: str) -> None:
        if len(olds) == 1 and len(news) == 1:
            self._compare_branch(olds[0], news[0], path)
            return
        by_label = {_label(b, kind): b for b in news}
        old_labels = {_label(b, kind) for b in olds}
        for branch in olds:
            label = _label(branch, kind)
            if label not in by_label:
                self.problems.append(f"{path}: alternative {label} removed")
            else:
                self._compare_branch(branch, by_label[label], f"{path}<{label}>")
        for label in sorted(set(by_label) - old_labels):
            self.problems.append(
                f"{path}: alternative {label} added, old readers refuse it (readers first)"
            )

    def _compare_branch(self, old: Schema, new: Schema, path: str) -> None:
        if old.get("format") != new.get("format"):
            self.problems.append(
                f"{path}: format changed from {old.get('format')} to {new.get('format')}"
            )
        old_values, new_values = _allowed_values(old), _allowed_values(new)
        if old_values is not None and new_values is not None:
            removed = [v for v in old_values if v not in new_values]
            if removed:
                self.problems.append(f"{path}: values {removed} no longer allowed")
            added = [v for v in new_values if v not in old_values]
            if added:
                self.problems.append(
                    f"{path}: values {added} added, old readers refuse them (readers first)"
                )
        elif old_values is not None:
            self.problems.append(f"{path}: values no longer limited to {old_values}")
        elif new_values is not None:
            self.problems.append(f"{path}: values newly limited to {new_values}")
        self._compare_constraints(old, new, path)
        self._compare_object(old, new, path)
        if "items" in old and "items" in new:
            self.compare(old["items"], new["items"], f"{path}[]")

    def _compare_constraints(self, old: Schema, new: Schema, path: str) -> None:
        for keyword in (*_UPPER, *_LOWER, *_OTHER):
            before, after = old.get(keyword), new.get(keyword)
            if before == after:
                continue
            relaxed: bool | None = None  # None: neither looser nor stricter, only different
            if after is None or before is None:
                relaxed = after is None
            elif keyword in _UPPER:
                relaxed = after > before
            elif keyword in _LOWER:
                relaxed = after < before
            how = {
                True: "relaxed, old readers refuse what it now allows",
                False: "tightened, records already written may fail it",
                None: "changed, old readers and records already written may disagree with it",
            }[relaxed]
            self.problems.append(f"{path}: {keyword} {before!r} -> {after!r} {how}")

    def _compare_object(self, old: Schema, new: Schema, path: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, schema in old_props.items():
            if name not in new_props:
                self.problems.append(f"{path}.{name}: property removed")
            else:
                self.compare(schema, new_props[name], f"{path}.{name}")
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        for name in sorted(new_required - old_required):
            self.problems.append(f"{path}.{name}: property newly required")
        for name in sorted((old_required - new_required) & set(new_props)):
            self.problems.append(
                f"{path}.{name}: property no longer required, old readers require it"
            )
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if old_extra is False:
            for name in sorted(set(new_props) - set(old_props)):
                self.problems.append(
                    f"{path}.{name}: property added to a closed object "
                    "(additionalProperties: false), old readers reject it"
                )
        elif new_extra is False:
            self.problems.append(f"{path}: object closed (additionalProperties: false)")
        if old_extra is False and new_extra is not False:
            self.problems.append(
                f"{path}: object opened, old readers refuse the properties it now allows "
                "(readers first)"
            )
        elif isinstance(old_extra, dict) or isinstance(new_extra, dict):
            # `true` (or absent) is the schema that allows anything: `{}`.
            as_schema = [e if isinstance(e, dict) else {} for e in (old_extra, new_extra)]
            self.compare(as_schema[0], as_schema[1], f"{path}.*")
