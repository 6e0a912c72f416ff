"""Is a new JSON Schema an additive evolution of an old one? Lists every breaking change.

Within a `vN`, old readers must read new records and new readers must read recorded old
ones, so only additions are allowed: no removed properties, no newly required ones, no
changed types or formats, no removed enum/const values or union alternatives, and no new
property on a closed object (`additionalProperties: false`: old readers reject it).
Optional fields appear as `anyOf: [X, {"type": "null"}]`, so `anyOf`/`oneOf` are read as
sets of alternatives; `$ref`s are followed within each document.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"))


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
    tag = branch.get("properties", {}).get("type", {}).get("const")
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
        for branch in olds:
            label = _label(branch, kind)
            if label not in by_label:
                self.problems.append(f"{path}: alternative {label} removed")
            else:
                self._compare_branch(branch, by_label[label], f"{path}<{label}>")

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
        self._compare_object(old, new, path)
        if "items" in old and "items" in new:
            self.compare(old["items"], new["items"], f"{path}[]")

    def _compare_object(self, old: Schema, new: Schema, path: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, schema in old_props.items():
            if name not in new_props:
                self.problems.append(f"{path}.{name}: property removed")
            else:
                self.compare(schema, new_props[name], f"{path}.{name}")
        for name in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
            self.problems.append(f"{path}.{name}: property newly required")
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
        elif isinstance(old_extra, dict) or isinstance(new_extra, dict):
            # `true` (or absent) is the schema that allows anything: `{}`.
            as_schema = [e if isinstance(e, dict) else {} for e in (old_extra, new_extra)]
            self.compare(as_schema[0], as_schema[1], f"{path}.*")
