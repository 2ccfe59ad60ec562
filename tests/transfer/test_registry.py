"""The copytool registry: entry points loaded lazily, broken plugins reported, fallback with reasons."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest

from pilotlib.errors import Direction, ErrorCode
from pilotlib.transfer.base import Copytool, TransferRequest, TransferResult
from pilotlib.transfer.errors import CopytoolUnavailableError, NoUsableCopytoolError, UnknownCopytoolError
from pilotlib.transfer.registry import ENTRY_POINT_GROUP, CopytoolRegistry


class FakeTool:
    """A copytool whose usability is set by the test."""

    schemes = ("root",)

    def __init__(self, name: str = "fake", reason: str | None = None) -> None:
        self.name = name
        self.reason = reason

    def unusable_reason(self) -> str | None:
        return self.reason

    def transfer(self, requests: Sequence[TransferRequest], workdir: Path) -> list[TransferResult]:
        return []


def _ep(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_builtin_entry_points_are_installed() -> None:
    """The installed package registers the built-in copytools under pilotlib.copytools."""
    names = CopytoolRegistry().names()
    for name in ("mv", "cp", "symlink", "xrdcp", "gfal", "lsm"):
        assert name in names


def test_unknown_name_has_unknowncopytool_code() -> None:
    """Asking for an unregistered name raises UnknownCopytoolError (1323) listing what is registered."""
    reg = CopytoolRegistry(entry_points=[], factories={"fake": FakeTool})
    with pytest.raises(UnknownCopytoolError) as err:
        reg.create("nope")
    assert err.value.code == ErrorCode.UNKNOWNCOPYTOOL
    assert "fake" in str(err.value)


def test_broken_plugin_is_unusable_not_fatal() -> None:
    """A plugin whose module cannot be imported is reported unusable with the import error, and select moves on."""
    reg = CopytoolRegistry(
        entry_points=[_ep("broken", "no_such_module_xyz:Tool")], factories={"fake": FakeTool}
    )
    with pytest.raises(CopytoolUnavailableError) as err:
        reg.create("broken", Direction.STAGE_OUT)
    assert "ModuleNotFoundError" in err.value.reason
    assert err.value.code == ErrorCode.STAGEOUTFAILED
    tool = reg.select(["broken", "fake"], Direction.STAGE_IN)
    assert isinstance(tool, FakeTool)


def test_select_reports_every_skip_reason() -> None:
    """When no configured tool is usable, the error names each tool and why it was skipped."""
    reg = CopytoolRegistry(
        entry_points=[_ep("broken", "no_such_module_xyz:Tool")],
        factories={"down": lambda: FakeTool("down", "command xyz not found")},
    )
    with pytest.raises(NoUsableCopytoolError) as err:
        reg.select(["down", "broken", "ghost"], Direction.STAGE_IN)
    assert err.value.code == ErrorCode.STAGEINFAILED
    assert err.value.skipped["down"] == "command xyz not found"
    assert "no_such_module_xyz" in err.value.skipped["broken"]
    assert "unknown copytool" in err.value.skipped["ghost"]


def test_select_all_unknown_is_unknowncopytool() -> None:
    """If every configured name is unknown the failure carries UNKNOWNCOPYTOOL."""
    reg = CopytoolRegistry(entry_points=[])
    with pytest.raises(NoUsableCopytoolError) as err:
        reg.select(["a", "b"], Direction.STAGE_OUT)
    assert err.value.code == ErrorCode.UNKNOWNCOPYTOOL


def test_select_honours_scheme_and_options() -> None:
    """A tool that does not serve the URL scheme is skipped; per-tool options reach the factory."""
    reg = CopytoolRegistry(entry_points=[], factories={"a": FakeTool, "b": FakeTool})
    tool = reg.select(["a", "b"], Direction.STAGE_IN, options={"b": {"name": "bee"}}, scheme="root")
    assert tool.name == "fake"
    with pytest.raises(NoUsableCopytoolError) as err:
        reg.select(["a"], Direction.STAGE_IN, scheme="https")
    assert "does not serve https://" in err.value.skipped["a"]


def test_bad_options_are_unusable() -> None:
    """Options a factory does not accept make the tool unusable instead of a bare TypeError."""
    reg = CopytoolRegistry(entry_points=[], factories={"a": FakeTool})
    with pytest.raises(CopytoolUnavailableError):
        reg.create("a", colour="red")


def test_fake_satisfies_protocol() -> None:
    """The Copytool protocol is runtime-checkable on name/schemes/methods."""
    assert isinstance(FakeTool(), Copytool)
