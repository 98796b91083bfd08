"""JSON Schema helpers for structured output: provider dialects, a checker, a sampler.

- ``strict_schema`` makes a schema fit OpenAI's ``strict`` mode the way the
  official SDK prepares a pydantic model: every object closed
  (``additionalProperties: false`` unless set), every property listed in
  ``required``, ``$ref`` siblings inlined, single-entry ``allOf`` merged,
  ``default: null`` dropped.
- ``anthropic_schema`` makes one fit Anthropic's (and Bedrock's) structured
  outputs, as Anthropic's SDK prepares a class: titles dropped, objects
  closed, keywords those APIs refuse (numeric bounds,
  string lengths, ``maxItems``, ``minItems`` above 1, unknown string
  formats, regexes with lookaround or backreferences) moved into the
  ``description`` so the model still reads them, ``oneOf`` as ``anyOf``.
- ``check`` validates a decoded value against a schema (the keywords
  above, local ``$ref`` included) and reports errors in the shape of
  pydantic's ``errors()``, for raw-schema answers.
- ``sample`` builds a value that satisfies a schema (the fake server and the
  mock provider answer structured requests with it).

Every function copies; none mutates its input.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["anthropic_schema", "check", "sample", "strict_schema"]

Schema = dict[str, Any]


# -- OpenAI strict mode ------------------------------------------------------------------


def strict_schema(schema: Mapping[str, Any]) -> Schema:
    """``schema`` in the form OpenAI's ``strict: true`` accepts (see the module docstring)."""
    root = copy.deepcopy(dict(schema))
    out: Schema = _strict(root, root)
    return out


def _strict(node: Any, root: Schema) -> Any:
    if not isinstance(node, dict):
        return node
    for key in ("$defs", "definitions"):
        defs = node.get(key)
        if isinstance(defs, dict):
            for name, sub in defs.items():
                defs[name] = _strict(sub, root)
    if node.get("type") == "object" and "additionalProperties" not in node:
        node["additionalProperties"] = False
    props = node.get("properties")
    if isinstance(props, dict):
        node["required"] = list(props)
        node["properties"] = {k: _strict(v, root) for k, v in props.items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"], root)
    for key in ("prefixItems", "anyOf"):
        if isinstance(node.get(key), list):
            node[key] = [_strict(v, root) for v in node[key]]
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1:
            del node["allOf"]
            node.update(_strict(all_of[0], root))
        else:
            node["allOf"] = [_strict(v, root) for v in all_of]
    if "default" in node and node["default"] is None:
        del node["default"]
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        # a $ref may not have siblings: inline its target, the siblings winning
        target = copy.deepcopy(_resolve(root, ref))
        del node["$ref"]
        merged = {**target, **node}
        node.clear()
        node.update(merged)
        return _strict(node, root)
    return node


def _resolve(root: Mapping[str, Any], ref: str) -> Schema:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported, not {ref!r}")
    node: Any = root
    for key in ref[2:].split("/"):
        key = key.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or key not in node:
            raise ValueError(f"$ref {ref!r} points nowhere")
        node = node[key]
    if not isinstance(node, dict):
        raise ValueError(f"$ref {ref!r} is not a schema")
    return node


# -- Anthropic / Bedrock ---------------------------------------------------------------------

_ANTHROPIC_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
_MOVED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)
_HARD_REGEX = re.compile(r"\(\?[=!<]|\\[1-9bB]")


def anthropic_schema(schema: Mapping[str, Any]) -> Schema:
    """``schema`` in the subset Anthropic's and Bedrock's structured outputs accept."""
    out: Schema = _anthropic(copy.deepcopy(dict(schema)))
    out.pop("$schema", None)
    return out


def _anthropic(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    notes: list[str] = []
    node.pop("title", None)  # names pydantic adds, tokens the model need not read
    for key in ("$defs", "definitions"):
        defs = node.get(key)
        if isinstance(defs, dict):
            node[key] = {k: _anthropic(v) for k, v in defs.items()}
    if node.get("type") == "object" or isinstance(node.get("properties"), dict):
        node["additionalProperties"] = False
        props = node.get("properties")
        if isinstance(props, dict):
            node["properties"] = {k: _anthropic(v) for k, v in props.items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _anthropic(node["items"])
    if "oneOf" in node and "anyOf" not in node:
        node["anyOf"] = node.pop("oneOf")
    for key in ("anyOf", "allOf", "prefixItems"):
        if isinstance(node.get(key), list):
            node[key] = [_anthropic(v) for v in node[key]]
    for key in _MOVED:
        if key in node:
            notes.append(f"{key}: {node.pop(key)}")
    if isinstance(node.get("minItems"), int) and node["minItems"] > 1:
        notes.append(f"minItems: {node['minItems']}")
        node["minItems"] = 1
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt not in _ANTHROPIC_FORMATS:
        notes.append(f"format: {node.pop('format')}")
    pattern = node.get("pattern")
    if isinstance(pattern, str) and _HARD_REGEX.search(pattern):
        notes.append(f"pattern: {node.pop('pattern')}")
    if notes:
        note = "{" + ", ".join(notes) + "}"
        described = node.get("description")
        node["description"] = f"{described}\n\n{note}" if described else note
    return node


# -- checking a value --------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}
_MAX_DEPTH = 64


def check(value: Any, schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where ``value`` breaks ``schema``, as pydantic-style error dicts (``[]``: it fits).

    Each error has ``type``, ``loc`` (a tuple of keys and indices), ``msg``
    and ``input``. Keywords aio_llm does not check (``format``, ``not``,
    ``if``/``then``, ``dependentRequired``...) are ignored: the check is
    a net for what providers do not guarantee, not a full validator.
    """
    errors: list[dict[str, Any]] = []
    _check(value, dict(schema), dict(schema), (), errors, 0)
    return errors


def _error(errors: list[dict[str, Any]], kind: str, loc: tuple[Any, ...], msg: str, v: Any) -> None:
    errors.append({"type": kind, "loc": loc, "msg": msg, "input": v})


def _is_type(value: Any, name: str) -> bool:
    kinds = _TYPES.get(name)
    if kinds is None:
        return True
    if isinstance(value, bool) and name != "boolean":
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, kinds)


def _check(
    value: Any,
    schema: Any,
    root: Schema,
    loc: tuple[Any, ...],
    errors: list[dict[str, Any]],
    depth: int,
) -> None:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return
    ref = schema.get("$ref")
    if isinstance(ref, str):
        try:
            target = _resolve(root, ref)
        except ValueError:
            target = {}
        _check(value, target, root, loc, errors, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, str | list):
        names = [kind] if isinstance(kind, str) else [k for k in kind if isinstance(k, str)]
        if names and not any(_is_type(value, n) for n in names):
            want = " or ".join(names)
            _error(errors, f"{names[0]}_type", loc, f"Input should be of type {want}", value)
            return
    if "const" in schema and value != schema["const"]:
        _error(errors, "literal_error", loc, f"Input should be {schema['const']!r}", value)
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        choices = ", ".join(repr(e) for e in enum[:10])
        _error(errors, "enum", loc, f"Input should be one of {choices}", value)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            if not any(not _errors_of(value, o, root, depth) for o in options):
                _error(
                    errors, "union_error", loc, "Input matches none of the allowed schemas", value
                )
    for sub in schema.get("allOf") or ():
        _check(value, sub, root, loc, errors, depth + 1)
    if isinstance(value, dict):
        _check_object(value, schema, root, loc, errors, depth)
    elif isinstance(value, list):
        _check_array(value, schema, root, loc, errors, depth)
    elif isinstance(value, str):
        _check_string(value, schema, loc, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, loc, errors)


def _errors_of(value: Any, schema: Any, root: Schema, depth: int) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    _check(value, schema, root, (), errors, depth + 1)
    return errors


def _check_object(
    value: dict[str, Any],
    schema: Schema,
    root: Schema,
    loc: tuple[Any, ...],
    errors: list[dict[str, Any]],
    depth: int,
) -> None:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    for name in schema.get("required") or ():
        if name not in value:
            _error(errors, "missing", (*loc, name), "Field required", value)
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            _check(item, props[key], root, (*loc, key), errors, depth + 1)
        elif extra is False:
            _error(errors, "extra_forbidden", (*loc, key), "Extra inputs are not permitted", item)
        elif isinstance(extra, dict):
            _check(item, extra, root, (*loc, key), errors, depth + 1)


def _check_array(
    value: list[Any],
    schema: Schema,
    root: Schema,
    loc: tuple[Any, ...],
    errors: list[dict[str, Any]],
    depth: int,
) -> None:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and len(value) < low:
        _error(errors, "too_short", loc, f"List should have at least {low} items", value)
    if isinstance(high, int) and len(value) > high:
        _error(errors, "too_long", loc, f"List should have at most {high} items", value)
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    items = schema.get("items")
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else items
        _check(item, sub, root, (*loc, i), errors, depth + 1)


def _check_string(value: str, schema: Schema, loc: tuple[Any, ...], errors: list[Any]) -> None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        _error(
            errors, "string_too_short", loc, f"String should have at least {low} characters", value
        )
    if isinstance(high, int) and len(value) > high:
        _error(
            errors, "string_too_long", loc, f"String should have at most {high} characters", value
        )
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            matched = re.search(pattern, value) is not None
        except re.error:
            matched = True  # a pattern Python cannot read is not ours to enforce
        if not matched:
            _error(
                errors, "string_pattern_mismatch", loc, f"String should match {pattern!r}", value
            )


def _check_number(value: float, schema: Schema, loc: tuple[Any, ...], errors: list[Any]) -> None:
    for key, kind, words in _BOUNDS:
        bound = schema.get(key)
        if not isinstance(bound, int | float) or isinstance(bound, bool):
            continue
        ok = {
            "minimum": value >= bound,
            "maximum": value <= bound,
            "exclusiveMinimum": value > bound,
            "exclusiveMaximum": value < bound,
        }[key]
        if not ok:
            _error(errors, kind, loc, f"Input should be {words} {bound}", value)


_BOUNDS = (
    ("minimum", "greater_than_equal", "greater than or equal to"),
    ("maximum", "less_than_equal", "less than or equal to"),
    ("exclusiveMinimum", "greater_than", "greater than"),
    ("exclusiveMaximum", "less_than", "less than"),
)


# -- sampling a value --------------------------------------------------------------------------

_DEEP = 6
"""Depth past which a recursive schema's sample stops (empty lists, nulls)."""

_FORMAT_SAMPLES = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "user@example.com",
    "hostname": "example.com",
    "uri": "https://example.com/",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def sample(schema: Mapping[str, Any], *, text: str = "test") -> Any:
    """A value that satisfies ``schema`` (deterministic; strings are ``text`` when free)."""
    root = dict(schema)
    return _sample(root, root, text, 0)


def _sample(schema: Any, root: Schema, text: str, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if isinstance(schema.get("$ref"), str):
        target = {
            **_resolve(root, schema["$ref"]),
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
        return _sample(target, root, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    deep = depth > _DEEP
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            # a branch that is not null says something; deep in a recursive schema, null ends it
            nulls = [o for o in options if o.get("type") == "null"]
            others = [o for o in options if o.get("type") != "null"]
            chosen = (nulls or others)[0] if deep else (others or options)[0]
            return _sample(chosen, root, text, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged: Schema = {}
        for part in all_of:
            part = _resolve(root, part["$ref"]) if isinstance(part.get("$ref"), str) else part
            merged = _merge(merged, part)
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return _sample(_merge(merged, rest), root, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        names = list(props) if required is None else [n for n in props if n in required]
        out = {name: _sample(props[name], root, text, depth + 1) for name in names}
        for name in required or ():
            out.setdefault(name, text)
        return out
    if kind == "array":
        low = schema.get("minItems")
        low = low if isinstance(low, int) else 0
        count = max(low, 0 if deep else 1)
        high = schema.get("maxItems")
        if isinstance(high, int):
            count = min(count, high)
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list) and prefix:
            return [_sample(p, root, text, depth + 1) for p in prefix]
        return [_sample(schema.get("items") or {}, root, text, depth + 1) for _ in range(count)]
    if kind == "string":
        return _sample_string(schema, text)
    if kind in ("integer", "number"):
        return _sample_number(schema, kind)
    if kind == "boolean":
        return True
    return None


def _merge(a: Schema, b: Mapping[str, Any]) -> Schema:
    out = dict(a)
    for key, value in b.items():
        if key == "properties" and isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}
        elif key == "required" and isinstance(out.get(key), list) and isinstance(value, list):
            out[key] = list(dict.fromkeys([*out[key], *value]))
        else:
            out[key] = value
    return out


def _sample_string(schema: Schema, text: str) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMAT_SAMPLES:
        return _FORMAT_SAMPLES[fmt]
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not _matches(pattern, text):
        made = _from_pattern(pattern)
        if made is not None:
            return made
    value = text
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        value = value + "x" * (low - len(value))
    if isinstance(high, int) and len(value) > high:
        value = value[:high]
    return value


def _sample_number(schema: Schema, kind: str) -> int | float:
    bounds = [schema.get(k) for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")]
    known = [b for b in bounds if isinstance(b, int | float) and not isinstance(b, bool)]
    candidates: list[float] = [1, 0]
    for b in known:
        candidates += [b, b + 1, b - 1]
    if len(known) >= 2:
        candidates.append((min(known) + max(known)) / 2)
    for value in candidates:
        if kind == "integer" and value != int(value):
            continue
        if not _check_in_bounds(value, schema):
            return int(value) if kind == "integer" else float(value)
    return 1 if kind == "integer" else 1.0


def _check_in_bounds(value: float, schema: Schema) -> list[Any]:
    errors: list[Any] = []
    _check_number(value, schema, (), errors)
    return errors


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True


_CLASSES = {"d": "0", "w": "a", "s": " ", "D": "a", "W": "-", "S": "a"}


def _from_pattern(pattern: str) -> str | None:
    """A string that matches a simple ``pattern`` (``None`` when it is beyond this sketch).

    Enough for the patterns schemas carry: literals, ``\\d``/``\\w``/``\\s``,
    character classes, groups with alternatives (the first is taken) and
    quantifiers (their least count, at least one for ``+``).
    """
    try:
        out, _ = _sequence(pattern, 0)
    except (IndexError, ValueError):
        return None
    return out if _matches(pattern, out) else None


def _sequence(p: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(p) and p[i] not in "|)":
        atom, i = _atom(p, i)
        low, i = _quantifier(p, i)
        out.append(atom * low)
    if i < len(p) and p[i] == "|":  # alternatives: keep the first, skip the rest
        depth = 0
        while i < len(p) and not (p[i] == ")" and depth == 0):
            depth += {"(": 1, ")": -1}.get(p[i], 0)
            i += 2 if p[i] == "\\" else 1
    return "".join(out), i


def _atom(p: str, i: int) -> tuple[str, int]:
    ch = p[i]
    if ch in "^$":
        return "", i + 1
    if ch == "\\":
        nxt = p[i + 1]
        return _CLASSES.get(nxt, nxt), i + 2
    if ch == "[":
        end = p.index("]", i + 2)
        body = p[i + 1 : end]
        if body.startswith("^"):
            return ("a" if "a" not in body else "0"), end + 1
        if body.startswith("\\"):
            return _CLASSES.get(body[1], body[1]), end + 1
        return body[0], end + 1
    if ch == "(":
        j = i + 1
        if p.startswith("?:", j):
            j += 2
        elif p.startswith("?", j):
            raise ValueError("lookaround")
        inner, j = _sequence(p, j)
        if j >= len(p) or p[j] != ")":
            raise ValueError("unbalanced")
        return inner, j + 1
    if ch == ".":
        return "a", i + 1
    return ch, i + 1


def _quantifier(p: str, i: int) -> tuple[int, int]:
    if i >= len(p):
        return 1, i
    ch = p[i]
    if ch in "?*":
        return 0, i + 1 + (i + 1 < len(p) and p[i + 1] in "?+")
    if ch == "+":
        return 1, i + 1 + (i + 1 < len(p) and p[i + 1] in "?+")
    if ch == "{":
        end = p.index("}", i)
        low = p[i + 1 : end].split(",")[0]
        return int(low or 0), end + 1
    return 1, i
