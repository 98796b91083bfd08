"""The JSON Schema helpers behind structured output: provider forms, the checker, the sampler."""

from __future__ import annotations

import copy
import enum
from datetime import date
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from aio_llm._schema import anthropic_schema, check, sample, strict_schema


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    """Where someone lives."""

    street: str
    zip: str = Field(pattern=r"^\d{5}$")


class Person(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    age: int = Field(ge=0, le=150)
    nickname: str | None = None
    home: Address = Field(description="The main home")
    others: list[Address] = Field(default_factory=list, max_length=3)
    color: Color = Color.RED
    kind: Literal["a", "b"] = "a"
    born: date | None = None
    score: float = Field(default=0.5, gt=0, lt=1)


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


MODELS: list[type[BaseModel]] = [Address, Person, Tree]


# -- OpenAI strict -------------------------------------------------------------------------


def test_strict_schema_prepares_a_class_like_the_sdk() -> None:
    raw = Person.model_json_schema()
    before = copy.deepcopy(raw)
    out = strict_schema(raw)
    assert raw == before  # the input is not touched
    assert out["additionalProperties"] is False
    assert out["required"] == list(Person.model_fields)
    address = out["$defs"]["Address"]
    assert address["additionalProperties"] is False and address["required"] == ["street", "zip"]
    home = out["properties"]["home"]
    # a $ref with a sibling (the description) is inlined, the sibling winning
    assert "$ref" not in home and home["description"] == "The main home"
    assert (
        home["properties"]["street"]["type"] == "string" and home["additionalProperties"] is False
    )
    # a None default says nothing the nullable type does not: dropped
    assert "default" not in out["properties"]["nickname"]
    assert out["properties"]["others"]["items"] == {"$ref": "#/$defs/Address"}


def test_strict_schema_merges_a_single_allof_and_keeps_explicit_additional_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "x": {"allOf": [{"type": "object", "properties": {"y": {"type": "string"}}}]}
        },
        "additionalProperties": True,
    }
    out = strict_schema(schema)
    assert out["additionalProperties"] is True
    assert out["properties"]["x"] == {
        "type": "object",
        "properties": {"y": {"type": "string"}},
        "required": ["y"],
        "additionalProperties": False,
    }


def test_strict_schema_refuses_a_ref_that_points_nowhere() -> None:
    with pytest.raises(ValueError, match="points nowhere"):
        strict_schema({"type": "object", "properties": {"a": {"$ref": "#/$defs/X", "title": "A"}}})


# -- Anthropic / Bedrock -----------------------------------------------------------------


def test_anthropic_schema_moves_refused_keywords_into_descriptions() -> None:
    out = anthropic_schema(Person.model_json_schema())
    props = out["properties"]
    assert "title" not in out and all("title" not in p for p in props.values())
    assert out["additionalProperties"] is False
    assert props["age"] == {"type": "integer", "description": "{minimum: 0, maximum: 150}"}
    assert props["name"]["description"] == "{minLength: 1, maxLength: 40}"
    assert "minLength" not in props["name"]
    assert (
        "exclusiveMinimum" not in props["score"]
        and "exclusiveMinimum: 0" in props["score"]["description"]
    )
    assert props["others"]["description"] == "{maxItems: 3}"
    # a supported format stays; a simple pattern stays
    assert props["born"]["anyOf"][0] == {"type": "string", "format": "date"}
    assert out["$defs"]["Address"]["properties"]["zip"]["pattern"] == r"^\d{5}$"
    assert out["$defs"]["Address"]["additionalProperties"] is False
    assert out["$defs"]["Address"]["description"] == "Where someone lives."


def test_anthropic_schema_moves_hard_regexes_unknown_formats_and_keeps_a_description() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "pattern": "^(?!x)", "description": "A thing"},
            "b": {"type": "string", "format": "credit-card"},
            "c": {"oneOf": [{"type": "string"}, {"type": "null"}]},
            "d": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
    }
    out = anthropic_schema(schema)["properties"]
    assert out["a"] == {"type": "string", "description": "A thing\n\n{pattern: ^(?!x)}"}
    assert out["b"] == {"type": "string", "description": "{format: credit-card}"}
    assert out["c"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert out["d"]["minItems"] == 1 and out["d"]["description"] == "{minItems: 2}"


# -- checking ------------------------------------------------------------------------------


def test_check_reports_errors_in_pydantics_shape() -> None:
    schema = strict_schema(Person.model_json_schema())
    value: dict[str, Any] = {
        "name": "",
        "age": -1,
        "nickname": None,
        "home": {"street": "Main", "zip": "abc", "extra": 1},
        "others": [],
        "color": "green",
        "kind": "a",
        "born": None,
        "score": 2.0,
    }
    errors = {(e["type"], e["loc"]) for e in check(value, schema)}
    assert errors == {
        ("string_too_short", ("name",)),
        ("greater_than_equal", ("age",)),
        ("string_pattern_mismatch", ("home", "zip")),
        ("extra_forbidden", ("home", "extra")),
        ("enum", ("color",)),
        ("less_than", ("score",)),
    }
    for e in check(value, schema):
        assert set(e) == {"type", "loc", "msg", "input"}


def test_check_types_unions_and_missing_fields() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "u": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "flag": {"type": "boolean"},
        },
        "required": ["n", "u", "flag"],
    }
    assert check({"n": 1.0, "u": 3, "flag": False}, schema) == []
    got = {(e["type"], e["loc"]) for e in check({"n": True, "u": [1], "x": 1}, schema)}
    assert got == {("integer_type", ("n",)), ("union_error", ("u",)), ("missing", ("flag",))}
    assert check([1, 2], {"type": "array", "maxItems": 1})[0]["type"] == "too_long"


# -- sampling ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("form", ["plain", "strict", "anthropic"])
def test_a_sample_fits_its_schema_and_validates_into_the_class(
    model: type[BaseModel], form: str
) -> None:
    schema = model.model_json_schema()
    if form == "strict":
        schema = strict_schema(schema)
    elif form == "anthropic":
        schema = anthropic_schema(schema)
    value = sample(schema)
    assert check(value, schema) == []
    model.model_validate(value)


def test_sample_honours_bounds_formats_and_lengths() -> None:
    assert sample({"type": "integer", "minimum": 5}) == 5
    assert sample({"type": "number", "exclusiveMaximum": 0}) == -1.0
    assert sample({"type": "string", "minLength": 6}) == "testxx"
    assert sample({"type": "string", "format": "email"}) == "user@example.com"
    assert sample({"type": "array", "items": {"type": "boolean"}, "minItems": 2}) == [True, True]
    assert sample({"const": 3}) == 3 and sample({"enum": ["x", "y"]}) == "x"
    assert sample({"type": ["null", "string"]}) == "test"
