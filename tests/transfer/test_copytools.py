"""Per-tool behaviour beyond the shared contract: ARC's output.list, links, usability, fallback, missing libraries."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.xrootd import XRootDServer

from pilotlib.errors import Direction, ErrorCode
from pilotlib.transfer import CopytoolRegistry, NoUsableCopytoolError, TransferRequest
from pilotlib.transfer.copytools import CpCopytool, LsmCopytool, MvCopytool, SymlinkCopytool, XrdcpCopytool
from pilotlib.transfer.copytools.mv import copy_with_deadline


def _out(lfn: str, url: str) -> TransferRequest:
    return TransferRequest(lfn=lfn, direction=Direction.STAGE_OUT, source=lfn, destination=url)


def test_mv_output_list_arc_convention(tmp_path: Path) -> None:
    """With an output list, mv moves the output to the list's folder and appends 'lfn url:checksumtype=..'."""
    session = tmp_path / "session"
    work = session / "work"
    work.mkdir(parents=True)
    (work / "AOD.root").write_bytes(b"aod")
    tool = MvCopytool(output_list=session / "output.list")
    (result,) = tool.transfer([_out("AOD.root", "davs://se.example.org:443/atlas/AOD.root")], work)
    assert result.ok, result.error
    value = f"{zlib.adler32(b'aod'):08x}"
    assert (session / "output.list").read_text() == (
        f"AOD.root davs://se.example.org:443/atlas/AOD.root:checksumtype=adler32:checksumvalue={value}\n"
    )
    assert (session / "AOD.root").read_bytes() == b"aod" and not (work / "AOD.root").exists()


def test_mv_without_output_list_refuses_remote_url(tmp_path: Path) -> None:
    """Without an output list, mv cannot write to a remote URL: STAGEOUTFAILED, the file stays."""
    (tmp_path / "x").write_bytes(b"x")
    (result,) = MvCopytool().transfer([_out("x", "root://h//x")], tmp_path)
    assert result.error_code is ErrorCode.STAGEOUTFAILED
    assert (tmp_path / "x").exists()


def test_symlink_links_and_refuses_stage_out(tmp_path: Path) -> None:
    """symlink makes a link to the pre-staged file; it cannot stage out."""
    staged = tmp_path / "prestaged" / "EVNT.root"
    staged.parent.mkdir()
    staged.write_bytes(b"evnt")
    work = tmp_path / "work"
    work.mkdir()
    request = TransferRequest(lfn="EVNT.root", direction=Direction.STAGE_IN, source=str(staged),
                              destination="EVNT.root")
    (result,) = SymlinkCopytool().transfer([request], work)
    assert result.ok and (work / "EVNT.root").is_symlink()
    assert (work / "EVNT.root").resolve() == staged.resolve()
    (work / "o").write_bytes(b"o")
    (out,) = SymlinkCopytool().transfer([_out("o", str(tmp_path / "dest" / "o"))], work)
    assert out.error_code is ErrorCode.STAGEOUTFAILED


def test_cp_keeps_source(tmp_path: Path) -> None:
    """cp stages out to a file:// destination and keeps the original."""
    (tmp_path / "o").write_bytes(b"data")
    dest = tmp_path / "se" / "o"
    (result,) = CpCopytool().transfer([_out("o", dest.as_uri())], tmp_path)
    assert result.ok and dest.read_bytes() == b"data" and (tmp_path / "o").exists()


def test_lsm_unusable_names_missing_commands() -> None:
    """lsm says which site command is missing."""
    tool = LsmCopytool(get_command="no-such-lsm-get", put_command="no-such-lsm-put")
    assert tool.unusable_reason() == "command not found: no-such-lsm-get, no-such-lsm-put"


def test_xrdcp_command_backend_missing() -> None:
    """The command backend without the command is unusable, saying so."""
    reason = XrdcpCopytool(backend="command", command="no-such-xrdcp").unusable_reason()
    assert reason == "command 'no-such-xrdcp' not found on PATH"


@pytest.mark.integration
@pytest.mark.reliability("faults", "storage", "first copytool not installed: next copytool tried")
def test_fallback_to_next_tool_with_reasons(xrootd_server: XRootDServer, tmp_path: Path) -> None:
    """The activity's first tool (site lsm, not installed) is skipped and the next (xrdcp) stages the file in."""
    xrootd_server.put("fallback/f", b"fallback")
    registry = CopytoolRegistry()
    tool = registry.select(["lsm", "xrdcp"], Direction.STAGE_IN, scheme="root",
                           options={"lsm": {"get_command": "no-such-lsm-get"}})
    assert tool.name == "xrdcp"
    request = TransferRequest(lfn="f", direction=Direction.STAGE_IN, source=xrootd_server.root_url("fallback/f"),
                              destination="f")
    (result,) = tool.transfer([request], tmp_path)
    assert result.ok and (tmp_path / "f").read_bytes() == b"fallback"
    with pytest.raises(NoUsableCopytoolError) as err:
        registry.select(["lsm", "mv"], Direction.STAGE_IN, scheme="root",
                        options={"lsm": {"get_command": "no-such-lsm-get"}})
    assert err.value.skipped == {"lsm": "command not found: no-such-lsm-get, lsm-put",
                                 "mv": "does not serve root:// (serves file)"}


def test_missing_backend_libraries_do_not_stop_import() -> None:
    """With XRootD and gfal2 unimportable, pilotlib.transfer imports and the tools say why they are unusable."""
    code = """
import sys
sys.modules["XRootD"] = None
sys.modules["gfal2"] = None
import importlib.util
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name in ("XRootD", "gfal2") else real(name, *a)
from pilotlib.transfer import default_registry
reg = default_registry()
print(reg.create("xrdcp", backend="python").unusable_reason())
print(reg.create("gfal").unusable_reason())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.splitlines() == [
        "the XRootD Python client (pip install xrootd) is not importable",
        "the gfal2 Python binding is not importable (Debian python3-gfal2 or pip gfal2-python)",
    ]


def test_xrdcp_auto_falls_back_to_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the XRootD Python client, backend=auto uses the xrdcp command when it exists."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "XRootD" else real(name, *a))
    tool = XrdcpCopytool()
    assert tool.unusable_reason() is None
    assert tool._chosen() == "command"


class _CopyMeanwhile:
    """A stop never set that, the first time a copy looks at it, runs ``other`` (a second copy to the same place)."""

    reason = None

    def __init__(self, other: Callable[[], None]) -> None:
        self._other: Callable[[], None] | None = other

    def is_set(self) -> bool:
        if self._other is not None:
            other, self._other = self._other, None
            other()
        return False


def test_two_copies_to_one_place_at_once_both_complete(tmp_path: Path) -> None:
    """Two copies to one target at once (two pilots' stage-outs of one name to one place: found by the load test,
    ``tests/load``) each go through a partial file of their own: both complete and the target holds the whole of
    the last one renamed into place, with no partial file left. (Through one ``<name>.part`` the second copy
    truncated the first one's partial file and renamed it away: the first failed with ENOENT.)"""
    first, second = tmp_path / "first.dat", tmp_path / "second.dat"
    first.write_bytes(b"first copy\n" * 1000)
    second.write_bytes(b"second\n")
    target = tmp_path / "place" / "log.tgz"
    target.parent.mkdir()
    stop = _CopyMeanwhile(lambda: copy_with_deadline(second, target, time.monotonic() + 60, Direction.STAGE_OUT))
    copy_with_deadline(first, target, time.monotonic() + 60, Direction.STAGE_OUT, stop)  # type: ignore[arg-type]
    assert target.read_bytes() == first.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["log.tgz"]
