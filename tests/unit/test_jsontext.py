"""The bounded JSON decoder every job definition goes through (:mod:`pilotlib._jsontext`)."""

from __future__ import annotations

import json

import pytest

from pilotlib._jsontext import JsonTextError, OversizedInt, decode_utf8, loads

VALUE = (
    {"PandaID": 4242, "jobPars": "--maxEvents=10 --x=1.5e3 caf\u00e9 \u20ac", "n": -1.5e3, "t": True, "f": False,
     "z": None, "l": [1, -2.5, "x", {"k": "v\\\"q"}], "u": "\U0001f600", "e": "\\u00e9"}
)


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "utf8"])
def test_every_prefix_of_a_document_looks_truncated(ascii_only: bool) -> None:
    """What a reader sees while Harvester's ``json.dump`` is still writing (any prefix, in text or in bytes; with
    ``\\uXXXX`` escapes and surrogate pairs, or raw UTF-8) is a JsonTextError marked ``truncated``: worth reading
    again."""
    document = json.dumps(VALUE, ensure_ascii=ascii_only)
    assert loads(document) == VALUE
    for cut in range(len(document)):
        with pytest.raises(JsonTextError) as caught:
            loads(document[:cut])
        assert caught.value.truncated, (cut, document[:cut][-20:], caught.value.reason)
    data = document.encode()
    for cut in range(len(data)):
        try:
            decode_utf8(data[:cut])
        except JsonTextError as exc:
            assert exc.truncated, (cut, exc.reason)


@pytest.mark.parametrize(
    ("text", "reason"),
    [('{"a":,}', "Expecting value"), ('{"a": 1}e', "Extra data"), ('{"a": 1} {', "Extra data"),
     ('{"a": "\\q"}', "Invalid .escape"), ('{"a": nul}', "Expecting value"), ("[" * 10000, "nested too deeply"),
     ('{"a": ' + "[" * 10000 + "]" * 10000 + "}", "nested too deeply")],
)
def test_broken_before_its_end_is_final(text: str, reason: str) -> None:
    """A syntax error before the end of the text, or nesting too deep (a longer prefix is only deeper), is final."""
    with pytest.raises(JsonTextError, match=reason) as caught:
        loads(text)
    assert not caught.value.truncated


def test_bytes_that_are_not_utf8_are_final_unless_cut_at_the_end() -> None:
    """A byte that is not UTF-8 inside the text is final; a multi-byte character cut at the very end is truncated."""
    with pytest.raises(JsonTextError, match=r"not UTF-8 text \(invalid continuation byte at byte 7") as bad:
        decode_utf8(b'{"a": "\xe9t\xc3\xa9"}')
    assert not bad.value.truncated
    with pytest.raises(JsonTextError) as cut:
        decode_utf8('{"a": "\u20ac'.encode()[:-1])
    assert cut.value.truncated


def test_too_long_integer_decodes_as_a_marker() -> None:
    """An integer literal past Python's 4300-digit conversion limit does not abort the document (which would hide
    the field): it decodes as an OversizedInt with its length; 4300 digits are still an int."""
    document = loads('{"a": ' + "1" * 4301 + ', "b": -' + "2" * 4301 + ', "c": ' + "3" * 4300 + "}")
    assert document["a"] == OversizedInt(4301) and document["b"] == OversizedInt(4301)
    assert document["c"] == int("3" * 4300)
    assert str(document["a"]) == "<an integer of 4301 digits>"
