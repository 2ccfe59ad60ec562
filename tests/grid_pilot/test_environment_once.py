"""The grid pilot reads its environment once, into the settings; nothing after reads ``os.environ``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures.environ import NoEnviron

from apps.grid_pilot.cli import ConfigError, parse_settings
from apps.grid_pilot.compose import build_kit
from pilotlib.stop import Stop
from pilotlib.workflow import RunnerExecutor


def test_the_settings_carry_a_copy_of_the_environment_read_once(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``parse_settings(argv, environ)`` keeps a read-only copy: a later change of the given mapping is not seen,
    the copy cannot be changed, it is not in the settings' repr (it may hold secrets), and without one given the
    settings copy ``os.environ`` as it is when they are built."""
    environ = {"SLURM_JOB_ID": "4242", "BEARER_TOKEN": "TOKEN-CONTENT"}
    settings = parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path)], environ)
    environ["SLURM_JOB_ID"] = "changed"
    assert dict(settings.environ) == {"SLURM_JOB_ID": "4242", "BEARER_TOKEN": "TOKEN-CONTENT"}
    with pytest.raises(TypeError):
        settings.environ["X"] = "y"  # type: ignore[index]
    assert "TOKEN-CONTENT" not in repr(settings)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    read = parse_settings(["--mode", "arc", "--launch-dir", str(tmp_path)])
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    assert read.batch_id == "77" and dict(read.environ) == dict(os.environ, SLURM_JOB_ID="77")


def test_a_config_file_cannot_set_the_environment(tmp_path: Path) -> None:
    """``environ`` is not a setting: a config file naming it is refused like any unknown key."""
    cfg = tmp_path / "pilot.toml"
    cfg.write_text('[grid-pilot]\nmode = "arc"\nlaunch-dir = "/l"\n[grid-pilot.environ]\nSLURM_JOB_ID = "1"\n')
    with pytest.raises(ConfigError, match="unknown setting\\(s\\) in config file: environ"):
        parse_settings(["--config", str(cfg)], {"SLURM_JOB_ID": "2"})


def test_the_pilot_parts_take_the_environment_from_the_settings(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``os.environ`` failing every read, the batch id (``SLURM_JOB_ID``), the dispatcher's proxy
    (``X509_USER_PROXY``) and the payload's base environment all come from the settings' environment."""
    proxy = tmp_path / "x509up"
    proxy.write_text("PEM")
    environ = {"SLURM_JOB_ID": "4242", "X509_USER_PROXY": str(proxy), "SITE_VAR": "site"}
    settings = parse_settings(["-q", "Q", "--url", "https://127.0.0.1:1", "-a", str(tmp_path)], environ)
    with monkeypatch.context() as patched:
        patched.setattr(os, "environ", NoEnviron())
        kit = build_kit(settings, Stop())
    identity, client = kit.identity, kit.mode.source
    assert isinstance(kit.payload, RunnerExecutor)
    base_env = kit.payload.settings.base_env
    assert identity.batch_id == "4242"
    assert client._transport.credentials.path == proxy  # type: ignore[attr-defined]
    assert base_env["SITE_VAR"] == "site"
