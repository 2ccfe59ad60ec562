"""The grid pilot's command line and config file -> :class:`Settings`.

Option names follow pilot3's where one exists (``-q/--queue``, ``-s/--site``, ``-j/--joblabel``, ``-a/--workdir``,
``-l/--lifetime``, ``--url``, ``--harvester-workdir``, ``--input-dir``, ``--output-dir``; pilot3 ``arguments.py``).
A TOML config file (``--config``) gives the same settings by their long names (``queue = "X"``, ``lifetime = 3600``);
the command line wins over the file.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from apps.grid_pilot.settings import HARVESTER_FILES, Mode, Settings

__all__ = ["ConfigError", "build_parser", "parse_settings"]

DESCRIPTION = """\
Run PanDA jobs on this node: fetch a job, stage its inputs in, run its payload, stage its outputs and its log out,
and report every step. Three modes:

  server     jobs from the PanDA dispatcher at --url (default mode)
  harvester  jobs from Harvester's files in --harvester-workdir (the worker's access point)
  arc        the job file an ARC CE put in --launch-dir; no server calls, updates go to heartbeat.json

Exit status: 0 all jobs done (or no job), 64-83 a pilot error a wrapper can act on, 128+N stopped by signal N,
1 another failure.
"""

EPILOG = """\
examples:
  grid-pilot -q MY_QUEUE --url https://pandaserver.example:25443 -j managed -a /scratch/pilot
  grid-pilot --mode harvester --harvester-workdir $PWD -q MY_QUEUE
  grid-pilot --mode arc --launch-dir $PWD --output-dir $PWD/out
"""

_NUMBERS = {"lifetime": float, "timefloor": float, "heartbeat": float, "final_retry": float, "max_jobs": int,
            "in_flight": int, "payload_grace": float, "looping_limit": float, "memory_limit_kb": int,
            "free_space_limit_mb": int, "free_space_limit_running_mb": int, "state_reserve_mb": int}


class ConfigError(Exception):
    """A setting is missing or invalid; the message says which."""


def build_parser() -> argparse.ArgumentParser:
    """The ``grid-pilot`` argument parser (every default is None: unset options fall back to the config file)."""
    p = argparse.ArgumentParser(prog="grid-pilot", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter, argument_default=None)
    p.add_argument("--config", type=Path, help="TOML file with settings by their long names")
    p.add_argument("--mode", choices=[m.value for m in Mode], help="where jobs come from (default: server)")
    p.add_argument("-q", "--queue", help="PanDA queue name (computingElement)")
    p.add_argument("-s", "--site", help="site name (siteName); default: the queue name")
    p.add_argument("--url", help="PanDA server base URL, e.g. https://pandaserver.cern.ch:25443")
    p.add_argument("--api", choices=["legacy", "v1"],
                   help="dispatcher dialect: v1 (panda-server 1.x, the default) or legacy (before 1.0)")
    p.add_argument("-j", "--joblabel", dest="job_label", help="job label, prodSourceLabel (default: managed)")
    p.add_argument("-a", "--workdir", help="work area; each job runs in <workdir>/<PandaID> (default: .)")
    p.add_argument("--state-dir", help="the pilot's own state: final updates not yet acknowledged, the journal of "
                   "jobs, the pilot's logs (default: <workdir>/pilot-state; best on another file system than the "
                   "work area)")
    p.add_argument("-l", "--lifetime", help="seconds the pilot may live (default: 324000)")
    p.add_argument("--timefloor", help="minutes during which a multi-job pilot keeps asking for jobs "
                   "(default: the queue's timefloor, else 0)")
    p.add_argument("--max-jobs", help="stop after this many jobs (default: no limit beyond the lifetime)")
    p.add_argument("--harvester-workdir", help="Harvester access point (harvester mode)")
    p.add_argument("--harvester-stageout", choices=["pilot", "harvester"],
                   help="pilot: stage outputs and the log out, declare them to Harvester; harvester: copy them into "
                   "the access point for Harvester to stage out (default: pilot)")
    p.add_argument("--harvester-per-job-dirs", action="store_const", const=True,
                   help="each job's files are in <access point>/<PandaID>/ (Harvester's MT_MultiJobs workers)")
    for option, key, _attr in HARVESTER_FILES:
        p.add_argument(f"--harvester-{option}", help=f"Harvester's {key} name (default: Harvester's)")
    p.add_argument("--launch-dir", help="ARC launch directory holding pandaJobData.out (arc mode)")
    p.add_argument("--queuedata-url", help="queue description URL, {pandaqueue} replaced; 'none': no download "
                   "(server mode default: <url>/cache/schedconfig/{pandaqueue}.all.json)")
    p.add_argument("--storagedata-url", help="storage descriptions URL (ddmendpoints.json); 'none': no download "
                   "(server mode default: <url>/cache/ddmendpoints.json)")
    p.add_argument("--queuedata-file", help="local queue description file, tried before the URL")
    p.add_argument("--storagedata-file", help="local storage descriptions file, tried before the URL")
    p.add_argument("--cache-dir", help="where downloaded descriptions are cached (default: the work area)")
    p.add_argument("--input-dir", dest="input_url",
                   help="where inputs are when their storage is not described: a directory or root:// URL")
    p.add_argument("--output-dir", dest="output_url",
                   help="where outputs and the log go when their storage is not described: a directory or URL")
    p.add_argument("--copytool", help="copytool(s) for stage-in and stage-out, comma-separated (overrides the "
                   "queue's acopytools; default without a queue description: mv)")
    p.add_argument("--copytool-in", help="copytool(s) for stage-in only")
    p.add_argument("--copytool-out", help="copytool(s) for stage-out and the log only")
    p.add_argument("--heartbeat", help="seconds between heartbeats (default: 1800)")
    p.add_argument("--looping-limit", help="seconds without a file written in the work directory before the job "
                   "is a looping job (default: 7200)")
    p.add_argument("--memory-limit", dest="memory_limit_kb",
                   help="payload PSS limit in kB (default: from the job's resource type and the queue)")
    p.add_argument("--free-space-limit", dest="free_space_limit_mb",
                   help="MB the work area must have free before a job is asked for (default: 2000, pilot3's 2 GB)")
    p.add_argument("--free-space-limit-running", dest="free_space_limit_running_mb",
                   help="MB the work area must keep free before and during the payload (default: 1000)")
    p.add_argument("--state-reserve", dest="state_reserve_mb",
                   help="MB the state directory keeps preallocated for the final update and the pilot's log on a "
                   "full disk (default: 4; 0: none)")
    p.add_argument("--no-cleanup", dest="cleanup", action="store_const", const=False,
                   help="keep each job's work directory after its final update (default: removed once the final "
                   "update is acknowledged and the log staged out)")
    p.add_argument("--in-flight", help="jobs handled at once; 2 fetches the next job while a payload runs")
    p.add_argument("--capath", dest="ca_path", help="CA certificate directory for TLS verification (the server, "
                   "the descriptions, transformation downloads); the payload gets it as X509_CERT_DIR")
    p.add_argument("--proxy", "--cacert", dest="proxy",
                   help="X509 proxy file (pilot3's --cacert; default: $X509_USER_PROXY, else /tmp/x509up_u<uid>); "
                   "the payload gets its path as X509_USER_PROXY")
    p.add_argument("--token-file", help="bearer token file; the payload gets its path as BEARER_TOKEN_FILE")
    p.add_argument("--container-runtime", help="the payload's container runtime when the queue names none "
                   "(bubblewrap, podman, apptainer, singularity)")
    p.add_argument("--container-image", help="the payload's image when the job names none (a directory, .sif file "
                   "or docker:// reference, as the runtime takes it)")
    p.add_argument("--platform-image", dest="platform_images", action="append", metavar="PLATFORM=IMAGE",
                   help="the image for jobs of a platform (cmtConfig's architecture and OS, e.g. "
                   "x86_64-el9=/cvmfs/unpacked.cern.ch/.../el9) that name none; repeatable; before --container-image")
    p.add_argument("--middleware-image", help="the image stage-in and stage-out run a copytool in when it is not "
                   "usable on the node and the queue's container_type names a middleware container (an unpacked "
                   "directory, .sif file or docker:// reference, with python3 and pilotlib)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO")
    return p


def _load_config(path: Path | None) -> dict[str, object]:
    if path is None:
        return {}
    import tomllib  # noqa: PLC0415 - only when a config file is given (a pilot's start is kept short)

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    section = data.get("grid-pilot", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [grid-pilot] must be a table")
    return {str(k).replace("-", "_"): v for k, v in section.items()}


def _merge(args: argparse.Namespace, config: Mapping[str, object]) -> dict[str, object]:
    merged = dict(config)
    if "platform_image" in merged:  # the option's long name; the setting holds them all
        merged["platform_images"] = merged.pop("platform_image")
    merged.update({k: v for k, v in vars(args).items() if v is not None and k != "config"})
    for key in ("copytool", "copytool_in", "copytool_out"):
        if isinstance(merged.get(key), str):
            merged[key] = tuple(t.strip() for t in str(merged[key]).split(",") if t.strip())
    tools = merged.pop("copytool", None)
    if tools:
        merged.setdefault("copytool_in", tools)
        merged.setdefault("copytool_out", tools)
    return merged


def _convert(values: dict[str, object]) -> dict[str, object]:
    out = dict(values)
    for key, kind in _NUMBERS.items():
        if key in out:
            try:
                out[key] = kind(str(out[key]))
            except ValueError:
                raise ConfigError(f"{key.replace('_', '-')} must be a number, got {out[key]!r}") from None
    if "timefloor" in out:
        out["timefloor"] = float(str(out["timefloor"])) * 60.0
    if "platform_images" in out:
        out["platform_images"] = _platform_images(out["platform_images"])
    modes = {m.value: m for m in Mode}
    if str(out.get("mode", Mode.SERVER.value)) not in modes:
        raise ConfigError(f"mode must be one of {', '.join(modes)}, got {out['mode']!r}")
    out["mode"] = modes[str(out.get("mode", Mode.SERVER.value))]
    for key in ("workdir", "state_dir", "harvester_workdir", "launch_dir", "ca_path", "queuedata_file",
                "storagedata_file", "cache_dir", "proxy", "token_file"):
        if key in out:
            if not str(out[key]).strip():  # Path("") is the current directory: a typo, never meant
                raise ConfigError(f"{key.replace('_', '-')} must not be empty")
            out[key] = Path(str(out[key])).absolute()
    return out


def _platform_images(value: object) -> dict[str, str]:
    """``PLATFORM=IMAGE`` strings (the command line, a TOML list) or a TOML table, as a mapping."""
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        pairs = [tuple(str(item).partition("=")[::2]) for item in value]  # type: ignore[misc]
    else:
        raise ConfigError(f"platform-image must be PLATFORM=IMAGE entries, got {value!r}")
    for platform, image in pairs:
        if not platform.strip() or not image.strip():
            raise ConfigError(f"platform-image must be PLATFORM=IMAGE, got {platform}={image}")
    return {platform.strip(): image.strip() for platform, image in pairs}


def _check(settings: Settings) -> None:
    if settings.mode is Mode.SERVER and not (settings.url and settings.queue):
        raise ConfigError("server mode needs --url and -q/--queue")
    if settings.mode is Mode.HARVESTER:
        _check_harvester(settings)
    if settings.mode is Mode.ARC and settings.launch_dir is None:
        raise ConfigError("arc mode needs --launch-dir")
    if settings.url and not settings.url.startswith(("https://", "http://")):
        raise ConfigError(f"--url must be an http(s) URL, got {settings.url!r}")
    if settings.lifetime <= 0 or settings.in_flight < 1:
        raise ConfigError("lifetime must be positive and in-flight at least 1")
    if settings.heartbeat <= 0:  # 0 would send heartbeats without pause
        raise ConfigError(f"heartbeat must be a positive number of seconds, got {settings.heartbeat}")
    if min(settings.free_space_limit_mb, settings.free_space_limit_running_mb, settings.state_reserve_mb) < 0:
        raise ConfigError("free-space-limit, free-space-limit-running and state-reserve must not be negative")
    if settings.api not in ("legacy", "v1"):
        raise ConfigError(f"api must be legacy or v1, got {settings.api!r}")
    if settings.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log-level must be DEBUG, INFO, WARNING or ERROR, got {settings.log_level!r}")


def _check_harvester(settings: Settings) -> None:
    if settings.harvester_workdir is None:
        raise ConfigError("harvester mode needs --harvester-workdir")
    if settings.in_flight > 1 and not settings.harvester_per_job_dirs:
        raise ConfigError(f"in-flight {settings.in_flight} needs --harvester-per-job-dirs in harvester mode: "
                          "worker_attributes.json and jobReport.json are one per access point and Harvester does not "
                          "check which job wrote them")
    if settings.harvester_stageout not in ("pilot", "harvester"):
        raise ConfigError(f"harvester-stageout must be pilot or harvester, got {settings.harvester_stageout!r}")
    for option, name in settings.harvester_names.items():
        if "/" in name or name in (".", ".."):
            raise ConfigError(f"harvester-{option} must be a plain file name, got {name!r}")


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``argv`` (without the program name), the config file it names and ``environ`` (the
    pilot's environment, copied into :attr:`Settings.environ`; None: ``os.environ`` as it is now, the one place the
    grid pilot reads its environment).

    Raises:
        ConfigError: a setting is missing or invalid.
        SystemExit: from argparse, for ``--help`` or an unknown option (the app's edge only).
    """
    args = build_parser().parse_args(list(argv))
    values = _convert(_merge(args, _load_config(args.config)))
    known = {a.name for a in Settings.__attrs_attrs__} - {"environ"}  # the environment is not a setting
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) in config file: {', '.join(unknown)}")
    try:
        settings = Settings(**values, environ=os.environ if environ is None else environ)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad setting: {exc}") from exc
    _check(settings)
    return settings
