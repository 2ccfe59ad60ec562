"""The job model: parsing every shape of a PanDA job definition, serialising it back, bad input, states."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path
from typing import Any

import attrs
import pytest

from pilotlib.errors import (
    BadFileNameError,
    ErrorCode,
    JobDefinitionError,
    LfnTooLongError,
    ListLengthMismatchError,
    MissingFieldError,
)
from pilotlib.job import FileKind, FileSpec, Job, JobState, can_transition, job_to_wire, load_job_definitions, parse_job

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"


def _wire_documents(path: Path) -> list[dict[str, Any]]:
    """The definitions a file holds, as plain dictionaries (to compare the round trip with)."""
    text = path.read_text()
    if path.suffix != ".json":
        return [dict(urllib.parse.parse_qsl(text, keep_blank_values=True))]
    document = json.loads(text)
    return list(document.values()) if "PandaID" not in document else [document]


@pytest.mark.parametrize("path", sorted(EXAMPLES.iterdir()), ids=lambda p: p.name)
def test_every_example_parses_and_round_trips(path: Path) -> None:
    """Each example job definition parses, and serialising gives back exactly the dictionary that was read."""
    jobs = load_job_definitions(path.read_bytes())
    expected = _wire_documents(path)
    assert len(jobs) == len(expected) >= 1
    for job, wire in zip(jobs, expected, strict=True):
        assert job_to_wire(job) == wire
        assert job.log is not None and job.log.kind is FileKind.LOG
        assert job.inputs and job.outputs


def test_examples_cover_the_job_kinds() -> None:
    """The examples include production, user analysis, event service, multi-file, url-encoded and Harvester jobs."""
    (user,) = load_job_definitions((EXAMPLES / "user_analysis.json").read_text())
    assert user.is_analysis and user.direct_access_requested and user.debug
    assert user.transformation.endswith("/runGen-00-00-02") and user.panda_id == 6100000101
    (es,) = load_job_definitions((EXAMPLES / "event_service.json").read_text())
    assert es.event_service and es.core_count == 8 and es.resource_type == "MCORE"
    (multi,) = load_job_definitions((EXAMPLES / "multi_file.json").read_text())
    assert [f.filesize for f in multi.inputs] == [2147483648, 1999999999, 1048576]
    assert [(f.adler32, f.md5) for f in multi.inputs] == [
        ("01234567", None), (None, "0123456789abcdef0123456789abcdef"), ("89abcdef", None),
    ]  # fmt: skip
    assert multi.inputs[2].dblock is None and multi.inputs[2].ddmendpoint == "REMOTE_DATADISK"
    assert [f.lfn for f in multi.outputs] == ["AOD.31000401._000001.pool.root.1", "NTUP.31000401._000001.root.1"]
    assert multi.allow_no_output == ("NTUP.31000401._000001.root.1",)
    (cgi,) = load_job_definitions((EXAMPLES / "production_cgi.txt").read_text())
    assert cgi.panda_id == 6100000501 and cgi.looping_check is False
    first, second = load_job_definitions((EXAMPLES / "harvester_HPCJobs.json").read_text())
    assert (first.panda_id, second.panda_id) == (6100000201, 6100000202)
    assert second.job_pars_base64 and second.job_pars.startswith("--inputEVNTFile=EVNT.36000001._000002")
    assert first.extra["workerID"] == 880001


MINIMAL = {"PandaID": "7", "inFiles": "a.root,b.root", "outFiles": "o.root,log.tgz", "logFile": "log.tgz"}


def _job(**fields: Any) -> Job:
    return parse_job({**MINIMAL, **fields})


def test_parallel_lists_are_zipped_by_index() -> None:
    """GUID, fsize, checksum, scopeIn, ddmEndPointIn ... belong to the input at the same position."""
    job = _job(GUID="g1,g2", fsize="10,20", checksum="ad:0000000a,md5:" + "b" * 32, scopeIn="s1,s2",
               ddmEndPointIn="E1,E2", realDatasetsIn="d1,d2", dispatchDblock="x1,x2", prodDBlocks="p1,p2",
               prodDBlockToken="t1,t2")  # fmt: skip
    a, b = job.inputs
    assert a == FileSpec("a.root", FileKind.INPUT, scope="s1", guid="g1", filesize=10, adler32="0000000a",
                         dataset="d1", ddmendpoint="E1", dblock="x1", prod_dblock="p1", storage_token="t1")  # fmt: skip
    assert (b.guid, b.filesize, b.md5, b.adler32, b.scope, b.did) == ("g2", 20, "b" * 32, None, "s2", "s2:b.root")
    assert a.checksum == "ad:0000000a" and b.checksum == "md5:" + "b" * 32


def test_outputs_and_log_from_out_files() -> None:
    """The log is the outFiles entry named by logFile; scopeOut lists the other outputs' scopes."""
    job = _job(scopeOut="user.x", scopeLog="user.log", logGUID="LG", ddmEndPointOut="D1,D2",
               destinationDblock="b1,b2", realDatasets="r1,r2", fileDestinationSE="S1,S2",
               destinationDBlockToken="dst:A,dst:B")  # fmt: skip
    (out,) = job.outputs
    assert out == FileSpec("o.root", FileKind.OUTPUT, scope="user.x", dataset="r1", ddmendpoint="D1", dblock="b1",
                           storage_token="dst:A", destination_se="S1")  # fmt: skip
    assert job.log == FileSpec("log.tgz", FileKind.LOG, scope="user.log", guid="LG", dataset="r2", ddmendpoint="D2",
                               dblock="b2", storage_token="dst:B", destination_se="S2")  # fmt: skip
    assert [f.lfn for f in job.all_files] == ["a.root", "b.root", "o.root", "log.tgz"]


def test_scope_out_with_an_entry_for_the_log() -> None:
    """A scopeOut with one entry per outFiles entry (log included) is zipped by index, not shifted."""
    job = parse_job({"PandaID": "7", "outFiles": "log.tgz,o.root", "logFile": "log.tgz", "scopeOut": "ls,os"})
    assert job.outputs[0].scope == "os" and job.log is not None and job.log.scope == "ls"


def test_log_file_not_listed_in_out_files() -> None:
    """A logFile missing from outFiles still gives the log, with scopeLog and logGUID."""
    job = parse_job({"PandaID": "7", "logFile": "log.tgz", "scopeLog": "s", "logGUID": "G"})
    assert job.log == FileSpec("log.tgz", FileKind.LOG, scope="s", guid="G")


def test_null_placeholders() -> None:
    """NULL, None and empty entries inside lists and in scalars mean "not given"."""
    job = _job(GUID="NULL,g2", fsize=",20", checksum="NULL,NULL", scopeLog="NULL", logGUID="NULL",
               taskID="NULL", coreCount="", attemptNr="None")  # fmt: skip
    assert [f.guid for f in job.inputs] == [None, "g2"] and [f.filesize for f in job.inputs] == [None, 20]
    assert all(f.checksum is None for f in job.inputs)
    assert job.log is not None and job.log.scope is None and job.log.guid is None
    assert (job.task_id, job.core_count, job.attempt_nr) == (None, 1, 0)


def test_null_and_duplicate_file_names_are_skipped() -> None:
    """NULL entries in inFiles are no files; an LFN listed twice is one input (the server de-duplicates too)."""
    job = parse_job({"PandaID": "7", "inFiles": "a,NULL,a", "fsize": "1,2,3"})
    assert [(f.lfn, f.filesize) for f in job.inputs] == [("a", 1)]


def test_numbers_and_booleans_in_both_forms() -> None:
    """Numeric fields arrive as numbers or strings; flags as booleans or "True"/"False" strings."""
    typed = parse_job({"PandaID": 7, "coreCount": 8, "maxWalltime": 3600.0, "eventService": True,
                       "loopingCheck": False, "currentPriority": -5})  # fmt: skip
    text = parse_job({"PandaID": "7", "coreCount": "8", "maxWalltime": "3600.0", "eventService": "True",
                      "loopingCheck": "False", "currentPriority": "-5"})  # fmt: skip
    assert typed == text
    assert (typed.core_count, typed.max_walltime, typed.event_service, typed.looping_check) == (8, 3600, True, False)
    assert typed.current_priority == -5 and parse_job({"PandaID": "7"}).looping_check is True


def test_base64_job_parameters() -> None:
    """Base64 jobPars (the server encodes them for some tasks) are decoded and re-encoded on the wire."""
    pars = "--inputFile=a.root --maxEvents=10"
    encoded = base64.b64encode(pars.encode()).decode()
    job = parse_job({"PandaID": "7", "jobPars": encoded})
    assert (job.job_pars, job.job_pars_base64) == (pars, True)
    assert job_to_wire(job)["jobPars"] == encoded
    assert job_to_wire(attrs.evolve(job, source={}))["jobPars"] == encoded
    plain = parse_job({"PandaID": "7", "jobPars": pars})
    assert (plain.job_pars, plain.job_pars_base64) == (pars, False)


@pytest.mark.parametrize("pars", ["--maxEvents=10", "--inputFile=a.root", "-a", "Reco.py\n--x=1", "ünï=1"])
def test_base64_job_parameters_without_a_space(pars: str) -> None:
    """panda-server encodes with ``base64.b64encode(jobPars.encode()).decode()`` and sends no flag
    (``pandaserver/jobdispatcher/Protocol.py`` line 223, PanDAWMS/panda-server 1.0.4): ``--maxEvents=10`` arrives as
    ``LS1tYXhFdmVudHM9MTA=``, with no space in the decoded text, and is decoded all the same."""
    encoded = base64.b64encode(pars.encode()).decode()
    assert parse_job({"PandaID": "7", "jobPars": encoded}).job_pars == pars
    assert parse_job({"PandaID": "7", "jobPars": "LS1tYXhFdmVudHM9MTA="}).job_pars_base64


@pytest.mark.parametrize("pars", ["Reco1234", "runTests", "abcd", "ABCDabcd1234", "AAAAAAAA", "c2VjcmV0",
                                  "dGVzdA==x", "Zm9v", "YWJjZA=="])
def test_plain_job_parameters_that_are_valid_base64_stay_plain(pars: str) -> None:
    """Plain parameters made only of base64's alphabet are decoded only when the decoded text is printable UTF-8 and
    holds a character outside that alphabet (a space, ``-``, ``=``, ``.``), as every real set of parameters does:
    ``c2VjcmV0``
    ("secret"), ``Zm9v`` ("foo") and ``YWJjZA==`` ("abcd") decode to bare words and stay as sent, as do texts whose
    decoding is not printable UTF-8."""
    job = parse_job({"PandaID": "7", "jobPars": pars})
    assert (job.job_pars, job.job_pars_base64) == (pars, False)


@pytest.mark.parametrize("field,attr", [
    ("transferType", "transfer_type"), ("homepackage", "homepackage"), ("cmtConfig", "cmtconfig"),
    ("processingType", "processing_type"), ("destinationSE", "destination_se"), ("resource_type", "resource_type"),
])
def test_null_string_columns_read_as_unset(field: str, attr: str) -> None:
    """panda-server's ``JobSpec.__getattribute__`` returns ``"NULL"`` for every unset column
    (``pandaserver/taskbuffer/JobSpec.py`` line 244, 1.0.4) and ``Response.appendJob`` copies it into the job
    definition (``jobdispatcher/Protocol.py`` line 67 ``homepackage``, 263 ``transferType``, 287
    ``resource_type``): a string column sent as ``NULL`` reads as unset."""
    job = parse_job({"PandaID": "7", field: "NULL"})
    assert getattr(job, attr) == ""
    assert getattr(parse_job({"PandaID": "7", field: "x"}), attr) == "x"


def test_unknown_fields_are_kept() -> None:
    """Fields pilotlib does not model stay in ``extra`` and go back on the wire unchanged."""
    wire = {"PandaID": 7, "nucleus": "CERN-PROD", "someNewField": {"nested": [1, 2]}}
    job = parse_job(wire)
    assert dict(job.extra) == {"nucleus": "CERN-PROD", "someNewField": {"nested": [1, 2]}}
    assert job_to_wire(job) == wire


def test_credentials_are_kept_but_not_shown() -> None:
    """User secrets, pilot secrets and the PanDA proxy key go back on the wire but never appear in repr(job)."""
    wire = {"PandaID": "7", "secrets": '{"token": "S3CR3T-USER"}', "pilotSecrets": "S3CR3T-PILOT",
            "pandaProxySecretKey": "S3CR3T-KEY", "nucleus": "CERN-PROD"}
    job = parse_job(wire)
    assert job_to_wire(job) == wire and job.extra["pilotSecrets"] == "S3CR3T-PILOT"
    shown = repr(job)
    assert "S3CR3T" not in shown and "CERN-PROD" in shown and "'pilotSecrets': '<redacted>'" in shown


def test_changed_job_serialises_its_changes_only() -> None:
    """After ``attrs.evolve`` the changed fields are rendered; untouched fields keep their original form."""
    wire = {**MINIMAL, "attemptNr": "1", "coreCount": 8, "loopingCheck": False}
    job = attrs.evolve(parse_job(wire), attempt_nr=2)
    assert job_to_wire(job) == {**wire, "attemptNr": "2"}


def test_job_without_source_renders_canonically_and_parses_back() -> None:
    """A Job built in code serialises to a definition that parses back to an equal Job."""
    job = Job(panda_id=9, inputs=(FileSpec("in.root", FileKind.INPUT, scope="s", filesize=5, adler32="0000abcd"),),
              outputs=(FileSpec("out.root", FileKind.OUTPUT, scope="s"),),
              log=FileSpec("log.tgz", FileKind.LOG, scope="s", guid="G"), looping_check=False)  # fmt: skip
    wire = job_to_wire(job)
    assert wire["PandaID"] == "9" and wire["checksum"] == "ad:0000abcd" and wire["outFiles"] == "out.root,log.tgz"
    assert wire["loopingCheck"] == "False" and wire["scopeOut"] == "s" and wire["scopeLog"] == "s"
    assert parse_job(wire) == job


def test_values_are_frozen() -> None:
    """Jobs, files and their ``extra`` cannot be changed in place."""
    job = _job()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        job.panda_id = 8  # type: ignore[misc]
    with pytest.raises(TypeError):
        job.extra["x"] = 1  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        job.inputs[0].lfn = "b"  # type: ignore[misc]


BAD = [
    ({"inFiles": "a"}, MissingFieldError, ErrorCode.NOTDEFINED, "PandaID"),
    ({"PandaID": "NULL"}, MissingFieldError, ErrorCode.NOTDEFINED, "PandaID"),
    ({"PandaID": ""}, MissingFieldError, ErrorCode.NOTDEFINED, "PandaID"),
    ({"PandaID": "-3"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "PandaID"),
    ({"PandaID": "abc"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "PandaID"),
    ({"PandaID": True}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "PandaID"),
    ({"PandaID": "7", "inFiles": "a,b", "fsize": "1"}, ListLengthMismatchError, ErrorCode.NOTSAMELENGTH, "fsize"),
    ({"PandaID": "7", "inFiles": "a", "GUID": "g,h"}, ListLengthMismatchError, ErrorCode.NOTSAMELENGTH, "GUID"),
    ({"PandaID": "7", "outFiles": "a,b", "ddmEndPointOut": "X"}, ListLengthMismatchError, ErrorCode.NOTSAMELENGTH,
     "ddmEndPointOut"),
    ({"PandaID": "7", "outFiles": "a,b,c", "scopeOut": "s,t,u,v"}, ListLengthMismatchError, ErrorCode.NOTSAMELENGTH,
     "scopeOut"),
    ({"PandaID": "7", "inFiles": "a", "fsize": "big"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "fsize"),
    ({"PandaID": "7", "inFiles": "a", "fsize": "1_000"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "fsize"),
    ({"PandaID": "7", "inFiles": "a", "fsize": "1.5"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "fsize"),
    ({"PandaID": "7", "inFiles": "a", "fsize": "-1"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "fsize"),
    ({"PandaID": "7", "coreCount": "eight"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "coreCount"),
    ({"PandaID": "7", "maxWalltime": 1.5}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "maxWalltime"),
    ({"PandaID": "7", "inFiles": "a", "checksum": "sha1:abc"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE,
     "checksum"),
    ({"PandaID": "7", "inFiles": "a", "checksum": "ad:xyz"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE,
     "checksum"),
    ({"PandaID": "7", "inFiles": "a", "checksum": "ad:123456789"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE,
     "checksum"),
    ({"PandaID": "7", "inFiles": "a", "checksum": "md5:abc"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE,
     "checksum"),
    ({"PandaID": "7", "inFiles": "../etc/passwd"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "inFiles"),
    ({"PandaID": "7", "inFiles": "dir/file"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "inFiles"),
    ({"PandaID": "7", "inFiles": "a\\b"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "inFiles"),
    ({"PandaID": "7", "outFiles": "x..y"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "outFiles"),
    ({"PandaID": "7", "outFiles": "."}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "outFiles"),
    ({"PandaID": "7", "outFiles": "a\x00b"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "outFiles"),
    ({"PandaID": "7", "outFiles": "a\nb"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "outFiles"),
    ({"PandaID": "7", "outFiles": "a\u2028b"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "outFiles"),
    ({"PandaID": "7", "outFiles": "-rf"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "outFiles"),
    ({"PandaID": "7", "logFile": "/tmp/log.tgz"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "logFile"),
    ({"PandaID": "7", "inFiles": "a" * 256}, LfnTooLongError, ErrorCode.LFNTOOLONG, "inFiles"),
    ({"PandaID": "7", "eventService": "maybe"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "eventService"),
    ({"PandaID": "7", "jobName": {"a": 1}}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "jobName"),
    ({"PandaID": "7", "inFiles": ["a", {"b": 1}]}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "inFiles"),
    ({"PandaID": "7", 3: "x"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "<definition>"),
    # hostile values: beyond the server's 64-bit columns, NUL, unpaired surrogates, deep nesting, non-finite numbers
    ({"PandaID": 2**64}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "PandaID"),
    ({"PandaID": str(2**63)}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "PandaID"),
    ({"PandaID": "1e30"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "PandaID"),
    ({"PandaID": "7", "attemptNr": "9" * 4301}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "attemptNr"),
    ({"PandaID": "7", "maxCpuCount": 1e300}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "maxCpuCount"),
    ({"PandaID": "7", "maxCpuCount": float("nan")}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "maxCpuCount"),
    ({"PandaID": "7", "inFiles": "a", "fsize": str(2**64)}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE,
     "fsize"),
    ({"PandaID": "7", "jobPars": "a\x00b"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "jobPars"),
    ({"PandaID": "7", "transformation": "run\x00.sh"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE,
     "transformation"),
    ({"PandaID": "7", "jobPars": "\ud800"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "jobPars"),
    ({"PandaID": "7", "inFiles": "a\udcff"}, BadFileNameError, ErrorCode.BADOUTPUTFILENAME, "inFiles"),
    ({"PandaID": "7", "secrets": "x\x00"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "secrets"),
    ({"PandaID": "7", "nested": json.loads("[" * 40 + "]" * 40)},
     JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "nested"),
    ({"PandaID": "7", "meta": {"k": float("inf")}}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "meta"),
    ({"PandaID": "7", "fo\x00o": "x"}, JobDefinitionError, ErrorCode.CONVERSIONFAILURE, "<field name>"),
]  # fmt: skip


@pytest.mark.parametrize(("definition", "error", "code", "field"), BAD)
def test_bad_definitions(
    definition: dict[Any, Any], error: type[JobDefinitionError], code: ErrorCode, field: str
) -> None:
    """Bad input raises one specific error type, with its PanDA code, naming the field and showing the value."""
    with pytest.raises(JobDefinitionError) as info:
        parse_job(definition)
    assert type(info.value) is error
    assert info.value.code is code and info.value.field == field
    assert str(info.value).startswith(f"bad job definition field {field}=")


def test_lfn_of_255_characters_is_fine() -> None:
    """The limit is 255 characters: exactly 255 is accepted."""
    assert parse_job({"PandaID": "7", "inFiles": "a" * 255}).inputs[0].lfn == "a" * 255


BAD_DOCUMENTS = [
    ("", "empty job definition"),
    ("   \n", "empty job definition"),
    (b"\xff\xfe{", "not UTF-8"),
    ("{not json", "not valid JSON"),
    ('{"PandaID": 1' + "1" * 5000 + "}", "PandaID=.*out of range"),
    ("[" * 100000, "JSON nested too deeply"),
    ("[]", "must not be empty"),
    ("{}", "non-empty object"),
    ('"text"', "not a url-encoded job definition"),
    ("[1]", "must be a dictionary"),
    ("PandaID", "not a url-encoded job definition"),
    ("a=1&b", "not a url-encoded job definition"),
    ('{"123": {"PandaID": 124}}', "does not match the wrapper's key"),
    ('{"PandaID": 7, "attemptNr": 1' + "0" * 4300 + "}", "attemptNr=.*an integer of 4301 digits"),
    ('{"PandaID": 7, "custom": -' + "1" * 4301 + "}", "custom=.*too long to convert"),
    ('{"PandaID": 7, "custom": ' + "[" * 10000 + "]" * 10000 + "}", "JSON nested too deeply"),
    (b'{"PandaID": 7, "jobName": "caf\xe9"}', "not UTF-8 text"),
    ("PandaID=7&jobName=caf%E9", "not a url-encoded job definition"),
    ("PandaID=7&jobPars=a%00b", "jobPars=.*NUL"),
]


@pytest.mark.parametrize(("document", "reason"), BAD_DOCUMENTS)
def test_bad_documents(document: str | bytes, reason: str) -> None:
    """A document that is no job definition in any shape raises a JobDefinitionError saying why."""
    with pytest.raises(JobDefinitionError, match=reason) as info:
        load_job_definitions(document)
    assert isinstance(info.value.code, ErrorCode)


def test_document_of_the_wrong_type() -> None:
    """Passing something that is neither text nor bytes is a JobDefinitionError, not an AttributeError."""
    with pytest.raises(JobDefinitionError, match="text or bytes"):
        load_job_definitions(None)  # type: ignore[arg-type]


def test_document_shapes_give_the_same_job() -> None:
    """A JSON object, Harvester's wrapper (JSON and url-encoded), a JSON list and the legacy form agree."""
    wire = {"PandaID": "42", "inFiles": "a,b", "fsize": "1,2", "jobPars": "--x 1"}
    shapes = [json.dumps(wire), json.dumps({"42": wire}), json.dumps([wire]), urllib.parse.urlencode(wire),
              urllib.parse.urlencode(wire).encode(), "\n" + json.dumps(wire) + "\n"]  # fmt: skip
    jobs = [load_job_definitions(shape) for shape in shapes]
    assert all(len(found) == 1 and found[0] == jobs[0][0] for found in jobs)
    assert jobs[0][0].panda_id == 42 and [f.filesize for f in jobs[0][0].inputs] == [1, 2]


STATES = list(JobState)
ALLOWED = {
    ("new", "starting"), ("new", "stagein"), ("new", "failed"),
    ("starting", "stagein"), ("starting", "running"), ("starting", "failed"), ("starting", "holding"),
    ("stagein", "running"), ("stagein", "failed"), ("stagein", "holding"),
    ("running", "stageout"), ("running", "transferring"), ("running", "finished"), ("running", "failed"),
    ("running", "holding"),
    ("stageout", "transferring"), ("stageout", "finished"), ("stageout", "failed"), ("stageout", "holding"),
    ("transferring", "finished"), ("transferring", "failed"), ("transferring", "holding"),
    ("holding", "finished"), ("holding", "failed"),
}  # fmt: skip


@pytest.mark.parametrize("old", STATES, ids=lambda s: s.value)
@pytest.mark.parametrize("new", STATES, ids=lambda s: s.value)
def test_state_transitions(old: JobState, new: JobState) -> None:
    """Exactly the listed transitions are allowed (and staying put); finished and failed are the end."""
    assert can_transition(old, new) is (old is new or (old.value, new.value) in ALLOWED)


def test_server_states() -> None:
    """Internal states are reported as the nearest server state; final states are finished, failed, holding."""
    assert {s.value: s.server_state for s in JobState} == {
        "new": "starting", "starting": "starting", "stagein": "starting", "running": "running",
        "stageout": "running", "transferring": "transferring", "holding": "holding", "finished": "finished",
        "failed": "failed",
    }  # fmt: skip
    assert {s for s in JobState if s.is_final} == {JobState.FINISHED, JobState.FAILED, JobState.HOLDING}


@pytest.mark.parametrize(
    ("pars", "transfer_type", "direct"),
    [("--accessmode=direct", "", True), ("", "direct", True), ("--accessmode=copy", "direct", False),
     ("--useLocalIO --accessmode=direct", "", False), ("", "", False)],
)  # fmt: skip
def test_direct_access_requested(pars: str, transfer_type: str, direct: bool) -> None:
    """Direct access is asked by transferType=direct or --accessmode=direct, unless copy/local IO is forced."""
    job = parse_job({"PandaID": "7", "jobPars": pars, "transferType": transfer_type})
    assert job.direct_access_requested is direct


@pytest.mark.parametrize(("label", "analysis"), [("user", True), ("panda", True), ("managed", False), ("ptest", False)])
def test_is_analysis(label: str, analysis: bool) -> None:
    """User analysis jobs are prodSourceLabel user or panda."""
    assert parse_job({"PandaID": "7", "prodSourceLabel": label}).is_analysis is analysis


@pytest.mark.parametrize("field", ["secrets", "pilotSecrets", "pandaProxySecretKey"])
def test_hostile_credential_field_is_refused_without_showing_it(field: str) -> None:
    """A credential field holding a NUL (or nested too deep) is refused naming the field, and neither the error's
    message nor its value shows the credential (errors are logged and sent as ``pilotErrorDiag``)."""
    with pytest.raises(JobDefinitionError) as info:
        parse_job({"PandaID": "7", field: '{"token": "tok-SECRET-123\x00"}'})
    assert info.value.field == field and info.value.value == "<redacted>"
    assert "SECRET" not in str(info.value) and "NUL" in str(info.value)
