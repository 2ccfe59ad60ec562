"""Property-based tests (hypothesis) of the same targets as the fuzzing run: structured documents of the right
shape with hostile values, and arbitrary bytes, give a parsed object or the parser's typed error, nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fixtures.ledger import Ledger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .targets import SEEDS, TARGETS
from .test_fuzz import AREAS

EXAMPLES = 150
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                         | st.dictionaries(st.text(max_size=12), inner, max_size=6), max_leaves=30)


def _mutations(seed: Any) -> st.SearchStrategy[Any]:
    """A seed document with one of its values (at any depth) replaced by a generated one."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            walk(child, (*path, key))

    walk(seed, ())

    def replace(path: tuple[Any, ...], value: Any) -> Any:
        copy = json.loads(json.dumps(seed))
        if not path:
            return value
        node = copy
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return copy

    return st.builds(replace, st.sampled_from(paths), documents)


def _json_seeds(target: str) -> list[Any]:
    found = []
    for seed in SEEDS[target]:
        try:
            found.append(json.loads(seed))
        except ValueError:
            continue
    return found or [{}]


def _strategy(target: str) -> st.SearchStrategy[bytes]:
    structured = st.one_of(*(_mutations(seed) for seed in _json_seeds(target))) | documents
    as_json = structured.map(lambda document: json.dumps(document).encode())
    return as_json | st.binary(max_size=300) | st.sampled_from(SEEDS[target])


@pytest.mark.parametrize("target", [
    pytest.param(name, marks=pytest.mark.reliability("bad input", AREAS[name], f"property-based: {name}"))
    for name in TARGETS
])
def test_hostile_documents_give_a_parsed_object_or_a_typed_error(target: str, ledger: Ledger) -> None:
    """Documents of the seeds' shape with any value anywhere replaced, arbitrary JSON and arbitrary bytes: the
    target returns (parsed, or the parser's typed error); any other exception fails the test."""
    tried = [0]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=_strategy(target))
    def check(data: bytes) -> None:
        tried[0] += 1
        TARGETS[target](data)

    try:
        check()
    finally:
        ledger.add(inputs_tried=tried[0])
    assert tried[0] >= EXAMPLES
