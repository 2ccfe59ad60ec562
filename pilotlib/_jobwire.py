"""The wire form of a job definition: parsing into :class:`~pilotlib.job.Job` and serialising back.

Facts relied on (PanDAWMS/panda-server ``pandaserver/jobdispatcher/Protocol.py``, ``Response.appendJob``):

- per-file fields are comma-separated lists built file by file; inputs are de-duplicated by LFN; the log file is one of
  ``outFiles`` and named by ``logFile``, its scope is ``scopeLog`` and its GUID ``logGUID``, so ``scopeOut`` lists the
  scopes of the non-log outputs only;
- ``checksum`` entries are ``ad:<adler32>`` or ``md5:<md5>``; empty placeholders and ``NULL`` occur inside lists;
- ``jobPars`` is base64-encoded when the task asks for it (``encJobParams``), with no flag sent along, so the pilot
  recognises it by its form;
- in JSON answers some values are numbers or booleans (``loopingCheck`` is ``False``), in url-encoded ones strings.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from pilotlib._jobmodel import FileKind, FileSpec, Job, is_secret_field
from pilotlib._jsontext import JsonTextError, OversizedInt, decode_utf8, loads
from pilotlib.errors import (
    BadFileNameError,
    JobDefinitionError,
    LfnTooLongError,
    ListLengthMismatchError,
    MissingFieldError,
)

_NULLS = frozenset({"", "NULL", "None", "none", "null"})
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", "", "null", "none"})
MAX_LFN_LENGTH = 255
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_BASE64_ALPHABET = re.compile(r"[A-Za-z0-9+/]*")

# Scalar fields: Job attribute -> (wire key, kind). Kinds: int, int?, str, bool, bool+ (default True), csv.
_SCALARS: dict[str, tuple[str, str]] = {
    "panda_id": ("PandaID", "id"),
    "jobset_id": ("jobsetID", "int?"),
    "task_id": ("taskID", "int?"),
    "attempt_nr": ("attemptNr", "int"),
    "prod_source_label": ("prodSourceLabel", "str"),
    "job_name": ("jobName", "str"),
    "sw_release": ("swRelease", "str"),
    "homepackage": ("homepackage", "str"),
    "transformation": ("transformation", "str"),
    "cmtconfig": ("cmtConfig", "str"),
    "container_name": ("container_name", "str"),
    "processing_type": ("processingType", "str"),
    "current_priority": ("currentPriority", "int?"),
    "destination_se": ("destinationSE", "str"),
    "max_cpu_count": ("maxCpuCount", "int"),
    "min_ram_count": ("minRamCount", "int"),
    "max_disk_count": ("maxDiskCount", "int"),
    "core_count": ("coreCount", "int1"),
    "max_walltime": ("maxWalltime", "int"),
    "resource_type": ("resource_type", "str"),
    "event_service": ("eventService", "bool"),
    "event_service_merge": ("eventServiceMerge", "bool"),
    "write_to_file": ("writeToFile", "str"),
    "transfer_type": ("transferType", "str"),
    "alt_stage_out": ("altStageOut", "str"),
    "allow_no_output": ("allowNoOutput", "csv"),
    "looping_check": ("loopingCheck", "bool+"),
    "debug": ("debug", "bool"),
    "is_hpo": ("isHPO", "bool"),
    "use_vp": ("useVP", "bool"),
    "no_exec_str_cnv": ("noExecStrCnv", "bool"),
}

# Per-file lists: FileSpec attribute -> wire key.
_INPUT_LISTS: dict[str, str] = {
    "guid": "GUID",
    "filesize": "fsize",
    "checksum": "checksum",
    "scope": "scopeIn",
    "dataset": "realDatasetsIn",
    "ddmendpoint": "ddmEndPointIn",
    "dblock": "dispatchDblock",
    "prod_dblock": "prodDBlocks",
    "storage_token": "prodDBlockToken",
}
_OUTPUT_LISTS: dict[str, str] = {
    "dataset": "realDatasets",
    "ddmendpoint": "ddmEndPointOut",
    "dblock": "destinationDblock",
    "storage_token": "destinationDBlockToken",
    "destination_se": "fileDestinationSE",
}
_FILE_KEYS = frozenset(
    {"inFiles", "outFiles", "logFile", "logGUID", "scopeOut", "scopeLog", "jobPars"}
    | set(_INPUT_LISTS.values())
    | set(_OUTPUT_LISTS.values())
)
_FILE_NAME_KEYS = frozenset({"inFiles", "outFiles", "logFile"})
_MODELLED_KEYS = frozenset({key for key, _ in _SCALARS.values()} | _FILE_KEYS)


# ---------------------------------------------------------------------------------------------------------- scalars
def _text(field: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _clean(field, value)
    if isinstance(value, bool | int | float):
        return str(value)
    raise JobDefinitionError(field, value, f"expected a string, got {_kind(value)}")


def _kind(value: Any) -> str:
    return str(value) if isinstance(value, OversizedInt) else type(value).__name__


def _clean(field: str, text: str) -> str:
    """``text`` unless it holds a NUL or an unpaired surrogate: no argument list, path or UTF-8 file can carry them
    (``execve`` and ``open`` refuse a NUL, ``str.encode`` a surrogate), so they are refused here, naming the field."""
    error = BadFileNameError if field in _FILE_NAME_KEYS else JobDefinitionError
    if "\x00" in text:
        raise error(field, text, f"holds a NUL character at index {text.index(chr(0))}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(field, text, f"holds an unpaired surrogate at index {exc.start}") from None
    return text


_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")
_DIGITS = re.compile(r"[+-]?[0-9]+")
#: The range of the server's integer columns: panda-server keeps ``PandaID`` (and the other ids and counts) in
#: ``NUMBER(11)``/``bigint`` columns, so nothing beyond a signed 64-bit integer is a value it can have sent.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL = re.compile(r"[+-]?[0-9]{1,30}(\.[0-9]{0,30})?([eE][+-]?[0-9]{1,3})?")


def _int(field: str, value: Any, default: int | None) -> int | None:
    """A whole number from an int, a float with no fraction or a string of ASCII digits ("3600", "3600.0"), within
    the 64-bit range of the server's integer columns (:data:`INT64_MIN`..:data:`INT64_MAX`)."""
    if isinstance(value, bool):
        raise JobDefinitionError(field, value, "expected a number, got a boolean")
    if isinstance(value, OversizedInt):
        raise JobDefinitionError(field, str(value), "out of range: a number beyond 64 bits")
    if isinstance(value, int):
        return _in_range(field, value)
    if isinstance(value, float):
        return _in_range(field, _whole(field, value))
    text = _text(field, value).strip()
    if text in _NULLS:
        return default
    if _INTEGER.fullmatch(text):
        return _in_range(field, int(text))
    if _DIGITS.fullmatch(text):
        raise JobDefinitionError(field, value, f"out of range: a number of {len(text)} characters is beyond 64 bits")
    if not _DECIMAL.fullmatch(text):
        raise JobDefinitionError(field, value, "not a number")
    return _in_range(field, _whole(field, float(text)))


def _whole(field: str, number: float) -> int:
    if not math.isfinite(number):
        raise JobDefinitionError(field, number, "out of range: not a finite number")
    if not number.is_integer():
        raise JobDefinitionError(field, number, "not a whole number")
    return int(number)


def _in_range(field: str, number: int) -> int:
    if not INT64_MIN <= number <= INT64_MAX:
        shown = number if number.bit_length() <= 256 else f"<an integer of {number.bit_length()} bits>"
        raise JobDefinitionError(field, shown, "out of range: a number beyond 64 bits")
    return number


def _bool(field: str, value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    text = _text(field, value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return default if text in ("", "null", "none") else False
    raise JobDefinitionError(field, value, "not a boolean (True/False)")


def _scalar(field: str, kind: str, present: bool, value: Any) -> Any:
    if kind == "id":
        if not present or (not isinstance(value, OversizedInt) and _text(field, value).strip() in _NULLS):
            raise MissingFieldError(field, value if present else None, "the job has no PandaID")
        number = _int(field, value, None)
        if number is None or number <= 0:
            raise JobDefinitionError(field, value, "PandaID must be a positive number")
        return number
    if kind in ("int", "int?", "int1"):
        default = {"int": 0, "int?": None, "int1": 1}[kind]
        return _int(field, value, default) if present else default
    if kind in ("bool", "bool+"):
        default = kind == "bool+"
        return _bool(field, value, default) if present else default
    if kind == "csv":
        return tuple(item for item in _split(field, value) if item not in _NULLS) if present else ()
    text = _text(field, value) if present else ""
    # panda-server's JobSpec sends "NULL" for an unset string column: it reads as unset, like the numbers do
    return "" if text.strip() in _NULLS else text


# ---------------------------------------------------------------------------------------------------- file lists
def _split(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [_text(field, item).strip() for item in value]
    text = _text(field, value)
    return [] if text.strip() == "" else [item.strip() for item in text.split(",")]


def _optional(field: str, value: Any) -> str | None:
    text = _text(field, value).strip()
    return None if text in _NULLS else text


#: How panda-server names an event-service merge job's input that is an archive of range outputs (pilot3
#: ``pilot/info/filespec.py`` ``clean``: the prefix is dropped and the file marked ``is_tar``).
ARCHIVE_PREFIX = "zip://"


def _lfn(field: str, value: str) -> str:
    if len(value) > MAX_LFN_LENGTH:
        raise LfnTooLongError(field, value, f"longer than {MAX_LFN_LENGTH} characters")
    if "/" in value or "\\" in value:
        raise BadFileNameError(field, value, "a file name must not contain a path separator")
    if ".." in value or value in (".", "~"):
        raise BadFileNameError(field, value, "a file name must not contain '..'")
    if not value.isprintable():
        raise BadFileNameError(field, value, "a file name must not contain control or separator characters")
    if value.startswith("-"):
        raise BadFileNameError(field, value, "a file name must not start with '-'")
    return value


def _checksum(field: str, value: str) -> tuple[str | None, str | None]:
    """Return (adler32, md5) from ``ad:...``/``md5:...`` (or a bare 8 or 32 hex digit value)."""
    kind, _, digest = value.rpartition(":")
    digest = digest.lower()
    if not re.fullmatch(r"[0-9a-f]+", digest):
        raise JobDefinitionError(field, value, "checksum is not hexadecimal")
    if kind in ("ad", "adler32") or (not kind and len(digest) <= 8):
        if len(digest) > 8:
            raise JobDefinitionError(field, value, "adler32 has more than 8 hex digits")
        return digest.zfill(8), None
    if kind == "md5" or (not kind and len(digest) == 32):
        if len(digest) != 32:
            raise JobDefinitionError(field, value, "md5 must have 32 hex digits")
        return None, digest
    raise JobDefinitionError(field, value, "unknown checksum type (expected ad: or md5:)")


def _aligned(definition: Mapping[str, Any], key: str, count: int, anchor: str) -> list[str | None]:
    values = _split(key, definition.get(key))
    if not values:
        return [None] * count
    if len(values) != count:
        raise ListLengthMismatchError(
            key, definition.get(key), f"has {len(values)} entries but {anchor} has {count}"
        )
    return [None if item in _NULLS else item for item in values]


def _file_fields(attr: str, key: str, raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if attr == "filesize":
        size = _int(key, raw, None)
        if size is not None and size < 0:
            raise JobDefinitionError(key, raw, "a file size cannot be negative")
        return {"filesize": size}
    if attr == "checksum":
        adler32, md5 = _checksum(key, raw)
        return {"adler32": adler32, "md5": md5}
    return {attr: raw}


def _inputs(definition: Mapping[str, Any]) -> tuple[FileSpec, ...]:
    lfns = _split("inFiles", definition.get("inFiles"))
    columns = {attr: _aligned(definition, key, len(lfns), "inFiles") for attr, key in _INPUT_LISTS.items()}
    files: list[FileSpec] = []
    seen: set[str] = set()
    for index, name in enumerate(lfns):
        archive = name.startswith(ARCHIVE_PREFIX)  # a merge job's archive of range outputs (pilot3 filespec.py)
        lfn = name.removeprefix(ARCHIVE_PREFIX)
        if lfn in _NULLS or lfn in seen:
            continue
        seen.add(_lfn("inFiles", lfn))
        fields: dict[str, Any] = {"is_archive": archive} if archive else {}
        for attr, key in _INPUT_LISTS.items():
            fields.update(_file_fields(attr, key, columns[attr][index]))
        files.append(FileSpec(lfn=lfn, kind=FileKind.INPUT, **fields))
    return tuple(files)


def _output_scopes(definition: Mapping[str, Any], lfns: list[str], log_lfn: str) -> list[str | None]:
    """``scopeOut`` lists the non-log outputs' scopes in order; the log's scope is ``scopeLog``."""
    scopes = _split("scopeOut", definition.get("scopeOut"))
    non_log = [lfn for lfn in lfns if lfn != log_lfn]
    if scopes and len(scopes) not in (len(non_log), len(lfns)):
        raise ListLengthMismatchError(
            "scopeOut", definition.get("scopeOut"), f"has {len(scopes)} entries for {len(non_log)} output files"
        )
    log_scope = _optional("scopeLog", definition.get("scopeLog"))
    if scopes and len(scopes) == len(lfns) != len(non_log):  # one scope per outFiles entry, the log's included
        full = [None if scope in _NULLS else scope for scope in scopes]
        return [(log_scope or scope) if lfn == log_lfn else scope for lfn, scope in zip(lfns, full, strict=True)]
    result: list[str | None] = []
    pending = iter(scopes)
    for lfn in lfns:
        if lfn == log_lfn:
            result.append(log_scope)
        else:
            scope = next(pending, None)
            result.append(None if scope in _NULLS else scope)
    return result


def _outputs(definition: Mapping[str, Any]) -> tuple[tuple[FileSpec, ...], FileSpec | None]:
    lfns = _split("outFiles", definition.get("outFiles"))
    log_lfn = _text("logFile", definition.get("logFile")).strip()
    if log_lfn in _NULLS:
        log_lfn = ""
    else:
        _lfn("logFile", log_lfn)
    columns = {attr: _aligned(definition, key, len(lfns), "outFiles") for attr, key in _OUTPUT_LISTS.items()}
    scopes = _output_scopes(definition, lfns, log_lfn)
    log_guid = _optional("logGUID", definition.get("logGUID"))
    outputs: list[FileSpec] = []
    log: FileSpec | None = None
    seen: set[str] = set()
    for index, lfn in enumerate(lfns):
        if lfn in _NULLS or lfn in seen:
            continue
        seen.add(_lfn("outFiles", lfn))
        fields: dict[str, Any] = {attr: columns[attr][index] for attr in _OUTPUT_LISTS}
        if lfn == log_lfn:
            log = FileSpec(lfn=lfn, kind=FileKind.LOG, scope=scopes[index], guid=log_guid, **fields)
        else:
            outputs.append(FileSpec(lfn=lfn, kind=FileKind.OUTPUT, scope=scopes[index], **fields))
    if log is None and log_lfn:
        log_scope = _optional("scopeLog", definition.get("scopeLog"))
        log = FileSpec(lfn=log_lfn, kind=FileKind.LOG, scope=log_scope, guid=log_guid)
    return tuple(outputs), log


# ------------------------------------------------------------------------------------------------------- jobPars
def _decode_job_pars(value: Any) -> tuple[str, bool]:
    """Return (job parameters, whether they came base64-encoded).

    The server encodes with ``base64.b64encode`` and sends no flag (``--maxEvents=10`` arrives as
    ``LS1tYXhFdmVudHM9MTA=``). A value is taken as encoded only when it is canonical base64 (it re-encodes to the
    same text) that decodes to printable UTF-8 text holding a character the base64 alphabet lacks (a space, ``-``,
    ``=``, ``.``...): such a text could not have been sent as plain parameters, whereas a plain word made of
    letters and digits only ("Reco1234") stays as it is.
    """
    text = _text("jobPars", value)
    if len(text) < 4 or len(text) % 4 or not _BASE64.fullmatch(text):
        return text, False
    try:
        raw = base64.b64decode(text, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return text, False
    if base64.b64encode(raw).decode() != text or not decoded.replace("\n", "").replace("\t", "").isprintable():
        return text, False
    if _BASE64_ALPHABET.fullmatch(decoded):
        return text, False
    return decoded, True


# --------------------------------------------------------------------------------------------------------- parse
#: How deep a field the pilot does not model may nest lists and objects (a job definition is flat; the deepest
#: known field, a JSON-encoded ``secrets`` or ``pilotSecrets`` value, nests two levels).
MAX_DEPTH = 32


def _check_field(field: str, value: Any) -> None:
    """:func:`_check_value` for one unmodelled field; the error of a credential field never shows its value."""
    try:
        _check_value(field, value, 0)
    except JobDefinitionError as exc:
        if not is_secret_field(field):
            raise
        raise JobDefinitionError(field, "<redacted>", exc.reason) from None


def _check_value(field: str, value: Any, depth: int) -> None:
    """Refuse, naming the field, what could not be written back or used safely: deep nesting, a NUL, a surrogate, an
    integer beyond the conversion limit, a non-finite number."""
    if depth > MAX_DEPTH:
        raise JobDefinitionError(field, "<nested value>", f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _clean(field, value)
    elif isinstance(value, OversizedInt):
        raise JobDefinitionError(field, str(value), "out of range: an integer too long to convert")
    elif isinstance(value, float) and not math.isfinite(value):
        raise JobDefinitionError(field, value, "not a finite number")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_value(field, key, depth + 1)
            _check_value(field, item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_value(field, item, depth + 1)


def parse_job(definition: Mapping[str, Any]) -> Job:
    """Turn one job definition dictionary (url-decoded or JSON) into a :class:`Job`.

    Raises:
        pilotlib.errors.JobDefinitionError: a subclass naming the bad field and value, with its PanDA error code.
    """
    if not isinstance(definition, Mapping):
        raise JobDefinitionError("<definition>", definition, "a job definition must be a dictionary")
    for key in definition:
        if not isinstance(key, str):
            raise JobDefinitionError("<definition>", key, "field names must be strings")
        _clean("<field name>", key)
    for key, value in definition.items():
        if key not in _MODELLED_KEYS:
            _check_field(key, value)
    scalars = {
        attr: _scalar(key, kind, key in definition, definition.get(key)) for attr, (key, kind) in _SCALARS.items()
    }
    job_pars, encoded = _decode_job_pars(definition.get("jobPars"))
    outputs, log = _outputs(definition)
    extra = {key: value for key, value in definition.items() if key not in _MODELLED_KEYS}
    return Job(
        **scalars,
        job_pars=job_pars,
        job_pars_base64=encoded,
        inputs=_inputs(definition),
        outputs=outputs,
        log=log,
        extra=extra,
        source=dict(definition),
    )


# ----------------------------------------------------------------------------------------------------- serialise
def _render_scalar(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind in ("bool", "bool+"):
        return "True" if value else "False"
    if kind == "csv":
        return ",".join(value)
    return str(value)


def _join(values: Sequence[str | None]) -> str:
    if all(value is None for value in values):
        return ""
    return ",".join("NULL" if value is None else value for value in values)


def _file_value(spec: FileSpec, attr: str) -> str | None:
    if attr == "filesize":
        return None if spec.filesize is None else str(spec.filesize)
    value: str | None = getattr(spec, attr)
    return value


def _render_files(job: Job) -> dict[str, str]:
    out: dict[str, str] = {"inFiles": ",".join(ARCHIVE_PREFIX * f.is_archive + f.lfn for f in job.inputs)}
    for attr, key in _INPUT_LISTS.items():
        out[key] = _join([_file_value(f, attr) for f in job.inputs])
    written = list(job.outputs) + ([job.log] if job.log else [])
    out["outFiles"] = ",".join(f.lfn for f in written)
    for attr, key in _OUTPUT_LISTS.items():
        out[key] = _join([getattr(f, attr) for f in written])
    out["scopeOut"] = _join([f.scope for f in job.outputs])
    out["scopeLog"] = (job.log.scope or "") if job.log else ""
    out["logFile"] = job.log.lfn if job.log else ""
    out["logGUID"] = (job.log.guid or "") if job.log else ""
    return out


def _render(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {key: _render_scalar(kind, getattr(job, attr)) for attr, (key, kind) in _SCALARS.items()}
    out.update(_render_files(job))
    pars = job.job_pars
    out["jobPars"] = base64.b64encode(pars.encode()).decode() if job.job_pars_base64 else pars
    return out


def job_to_wire(job: Job) -> dict[str, Any]:
    """The job definition dictionary of ``job``; fields unchanged since parsing keep their original form."""
    canonical = _render(job)
    if not job.source:
        wire = {key: value for key, value in canonical.items() if value != ""}
        wire["PandaID"] = canonical["PandaID"]
        wire.update(job.extra)
        return wire
    baseline = _render(parse_job(job.source))
    wire = dict(job.source)
    for key, value in canonical.items():
        if baseline.get(key) != value:
            wire[key] = value
    for key in [k for k in wire if k not in _MODELLED_KEYS and k not in job.extra]:
        del wire[key]
    for key, value in job.extra.items():
        wire[key] = value
    return wire


# -------------------------------------------------------------------------------------------------------- documents
def load_job_definitions(data: str | bytes) -> tuple[Job, ...]:
    """Parse a job definition document in any shape it arrives in (see :mod:`pilotlib.job`).

    Raises:
        pilotlib.errors.JobDefinitionError: the text is not a job definition in any of these shapes.
    """
    if not isinstance(data, str | bytes):
        raise JobDefinitionError("<document>", data, "a job definition document must be text or bytes")
    if isinstance(data, bytes):
        try:
            data = decode_utf8(data)
        except JsonTextError as exc:
            raise JobDefinitionError("<document>", f"<{len(data)} bytes>", exc.reason) from None
    text = data.strip()
    if not text:
        raise JobDefinitionError("<document>", data, "empty job definition")
    if text[0] in "{[":
        return _from_json(text)
    return _from_urlencoded(text)


def _from_json(text: str) -> tuple[Job, ...]:
    try:
        document = loads(text)
    except JsonTextError as exc:  # a syntax error or too deep nesting (too long integers decode, then are refused)
        raise JobDefinitionError("<document>", text[:40], exc.reason) from None
    if isinstance(document, list):
        if not document:
            raise JobDefinitionError("<document>", text[:40], "a JSON list of job definitions must not be empty")
        return tuple(parse_job(item) for item in document)
    if not isinstance(document, dict) or not document:
        raise JobDefinitionError("<document>", text[:40], "a JSON job definition must be a non-empty object")
    if "PandaID" in document or not all(isinstance(value, dict) for value in document.values()):
        return (parse_job(document),)
    jobs = []
    for key, value in document.items():
        job = parse_job(value)
        if str(job.panda_id) != key.strip():
            raise JobDefinitionError("PandaID", value.get("PandaID"), f"does not match the wrapper's key {key!r}")
        jobs.append(job)
    return tuple(jobs)


def _from_urlencoded(text: str) -> tuple[Job, ...]:
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError too: a %-escape that is not UTF-8
        raise JobDefinitionError("<document>", text[:40], f"not a url-encoded job definition ({exc})") from None
    return (parse_job(dict(pairs)),)


__all__ = ["MAX_DEPTH", "MAX_LFN_LENGTH", "job_to_wire", "load_job_definitions", "parse_job"]
