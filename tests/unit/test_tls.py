"""TLS verification cannot be switched off by accident (issue 16, security): only ``False`` in so many words turns
it off, with a warning; an empty, false-looking or mistyped CA path is an error, never "no verification"
(``requests`` takes any false value, ``""`` included, as ``verify=False``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pilotlib._tls import tls_verify
from pilotlib.errors import CaPathError, ErrorCode
from pilotlib.info.sources import UrlSource
from pilotlib.panda.client import PandaClient

pytestmark = pytest.mark.reliability("security", "tls", "verification off only when asked, with a warning")


def test_true_and_an_existing_ca_path_verify(tmp_path: Path) -> None:
    """The default (True) and an existing CA directory are passed on as they are."""
    assert tls_verify(True, what="x") is True
    assert tls_verify(tmp_path, what="x") == str(tmp_path)


@pytest.mark.parametrize("value", ["", " ", "0", "false", "/no/such/ca"])
def test_an_empty_false_looking_or_mistyped_ca_path_is_nosuchfile(value: str) -> None:
    """Each is CaPathError (NOSUCHFILE, 1103) naming what it was for, never verification off."""
    with pytest.raises(CaPathError) as refused:
        tls_verify(value, what="the PanDA server https://h")
    assert refused.value.code == ErrorCode.NOSUCHFILE and "the PanDA server https://h" in str(refused.value)


@pytest.mark.parametrize("value", [None, 0, 1])
def test_a_value_that_is_neither_bool_nor_path_is_a_type_error(value: object) -> None:
    """``None`` or an integer (a config typo) is a TypeError, not a falsy "off"."""
    with pytest.raises(TypeError):
        tls_verify(value, what="x")  # type: ignore[arg-type]


def test_false_turns_it_off_with_a_warning_naming_the_server(caplog: pytest.LogCaptureFixture) -> None:
    """Only ``False`` turns verification off, and the warning names what is not verified."""
    with caplog.at_level(logging.WARNING):
        client = PandaClient("https://panda.example:25443", verify=False)
    assert client is not None
    assert any(r.levelno == logging.WARNING and "TLS verification is OFF" in r.getMessage()
               and "panda.example" in r.getMessage() for r in caplog.records)


def test_the_clients_refuse_a_missing_ca_dir(tmp_path: Path) -> None:
    """The dispatcher client and the description source check their CA path when made, not at the first call."""
    with pytest.raises(CaPathError):
        PandaClient("https://panda.example:25443", ca_dir=tmp_path / "missing")
    with pytest.raises(CaPathError):
        UrlSource("https://cric.example/{pandaqueue}.json", verify=str(tmp_path / "missing"))
