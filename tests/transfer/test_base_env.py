"""The copytools read no environment: the app gives them the one it read (``base_env``), through the registry."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from fixtures.environ import NoEnviron

from pilotlib.errors import Direction
from pilotlib.transfer import CopytoolRegistry, TransferRequest
from pilotlib.transfer.copytools import LsmCopytool, XrdcpCopytool
from pilotlib.transfer.copytools._common import run_command


def test_a_command_gets_the_base_environment_and_its_overlay_without_reading_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``run_command`` with ``base_env`` runs the command with the base and the overlay over it (the overlay wins)
    while ``os.environ`` fails every read; without ``base_env`` and with an overlay (the old behaviour) it reads
    the process environment, which then raises."""
    base = {"PATH": "/usr/bin:/bin", "SITE_VAR": "site", "XRD_X": "base"}
    script = 'echo "$SITE_VAR $XRD_X $BEARER_TOKEN"'
    with monkeypatch.context() as patched:
        patched.setattr(os, "environ", NoEnviron())
        done = run_command(["/bin/sh", "-c", script], 30, Direction.STAGE_IN,
                           env={"XRD_X": "overlay", "BEARER_TOKEN": "t"}, base_env=base)
        with pytest.raises(AssertionError, match=r"os\.environ"):
            run_command(["/bin/sh", "-c", script], 30, Direction.STAGE_IN, env={"XRD_X": "overlay"})
    assert (done.returncode, done.stdout) == (0, "site overlay t\n")


def test_the_registry_gives_its_base_environment_to_the_copytools_that_run_commands() -> None:
    """A registry built with ``base_env`` gives it to ``lsm`` and ``xrdcp`` (their factories take it), not to a
    factory without the option, and options that give their own ``base_env`` win."""
    env = {"PATH": "/usr/bin"}
    seen: list[dict[str, object]] = []

    def plain(**options: object) -> LsmCopytool:
        seen.append(options)
        return LsmCopytool()

    registry = CopytoolRegistry(entry_points=[], base_env=env,
                                factories={"lsm": LsmCopytool, "xrdcp": XrdcpCopytool, "plain": plain})
    lsm = registry.create("lsm")
    xrdcp = registry.create("xrdcp")
    registry.create("plain")
    own = registry.create("lsm", base_env={"PATH": "/opt"})
    assert isinstance(lsm, LsmCopytool) and lsm.base_env == env
    assert isinstance(xrdcp, XrdcpCopytool) and xrdcp.base_env == env
    assert seen == [{}]
    assert isinstance(own, LsmCopytool) and own.base_env == {"PATH": "/opt"}
    assert isinstance(CopytoolRegistry(entry_points=[], factories={"lsm": LsmCopytool}).create("lsm"),
                      LsmCopytool)


def test_lsm_stages_out_with_the_given_environment_and_its_token(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``lsm-put`` of a tokenised URL, with ``os.environ`` failing every read: the command runs with the given base
    environment and the token in ``BEARER_TOKEN`` (taken out of the URL), and the transfer succeeds."""
    record = tmp_path / "record"
    put = tmp_path / "lsm-put"
    put.write_text(f"#!{sys.executable}\nimport os\n"
                   f"open({str(record)!r}, 'w').write(os.environ['SITE_VAR'] + ' ' + os.environ['BEARER_TOKEN'])\n")
    put.chmod(put.stat().st_mode | stat.S_IXUSR)
    work = tmp_path / "work"
    work.mkdir()
    (work / "out.root").write_bytes(b"output")
    request = TransferRequest(lfn="out.root", direction=Direction.STAGE_OUT, source="out.root",
                              destination="davs://se.example.org:443/atlas/out.root?authz=TOKEN1", timeout=30)
    tool = LsmCopytool(get_command=str(put), put_command=str(put), base_env={"SITE_VAR": "site"})
    with monkeypatch.context() as patched:
        patched.setattr(os, "environ", NoEnviron())
        (result,) = tool.transfer([request], work)
    assert result.ok, result.error
    assert record.read_text() == "site TOKEN1"
