"""An event-service merge job's preparation (:mod:`pilotlib.eventservice.merge`), on real files and real archives.

Peer references are to PanDAWMS/pilot3 (commit a090538) and PanDAWMS/panda-server (commit 9cc3603).
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from fixtures.ledger import Ledger

from pilotlib.errors import BadFileNameError, ErrorCode, NoLocalSpaceError
from pilotlib.eventservice.merge import (
    ArchiveTooLargeError,
    BadArchiveError,
    MemberExistsError,
    MergePreparation,
    UnsafeArchiveError,
    WriteToFileError,
    job_option_for,
    parse_write_to_file,
    prepare_merge,
    rewrite_job_pars,
    unpack_archive,
    write_input_lists,
)
from pilotlib.job import Job, parse_job

OUT = "HITS.36000001._000001.pool.root.1"
RANGES = (f"{OUT}.36000001-5013009653-24039149400-1-1", f"{OUT}.36000001-5013009653-24039149400-2-1")
PREMERGE = "EventService_premerge_36000001-5013009653-24039149400-1-1.tar"
JOB_PARS = (f"--inputHitsFile=@inputFor_{OUT} --outputHitsFile={OUT} --autoConfiguration=everything "
            "--maxEvents=-1")


# ----------------------------------------------------------------------------------------------------- helpers
def merge_job(write_to_file: str, in_files: str, job_pars: str = JOB_PARS, merge: bool = True) -> Job:
    """A merge job parsed from its wire form, as the server sends it."""
    return parse_job({"PandaID": "4242", "eventServiceMerge": str(merge), "writeToFile": write_to_file,
                      "jobPars": job_pars, "inFiles": in_files, "outFiles": f"{OUT},log.tgz", "logFile": "log.tgz"})


def pilot3_tar(archive: Path, *outputs: Path) -> Path:
    """An ES premerge tar made as pilot3 makes it: ``tar -rf <tar> --directory=<dir> <basename>`` per range output
    (pilot/eventservice/workexecutor/plugins/genericexecutor.py:171-177)."""
    for output in outputs:
        subprocess.run(["tar", "-rf", str(archive), f"--directory={output.parent}", output.name], check=True)
    return archive


def range_outputs(folder: Path, names: tuple[str, ...] = RANGES) -> list[Path]:
    folder.mkdir(exist_ok=True)
    outputs = []
    for name in names:
        (folder / name).write_bytes(f"events of {name}".encode())
        outputs.append(folder / name)
    return outputs


def tar_with(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


# ----------------------------------------------------------------------------------------------------- parsing
def test_parse_splits_as_pilot3_and_keeps_the_order() -> None:
    """``^`` between entries, ``:`` after the name, ``,`` between the lfns; the order is the server's
    (pilot3 pilot/info/jobdata.py:984-993; panda-server pandaserver/jobdispatcher/Protocol.py:307-316)."""
    mapping = parse_write_to_file("inputFor_file2:lfn3,lfn4^inputFor_file1:lfn1")
    assert list(mapping.items()) == [("inputFor_file2", ("lfn3", "lfn4")), ("inputFor_file1", ("lfn1",))]
    with pytest.raises(TypeError):
        mapping["x"] = ("y",)  # type: ignore[index]


def test_an_empty_write_to_file_is_an_empty_mapping() -> None:
    """No ``writeToFile``: nothing to write (pilot3 pilot/info/jobdata.py:988)."""
    assert dict(parse_write_to_file("")) == {}


@pytest.mark.parametrize("text, bad", [
    ("inputFor_a", "inputFor_a"),                   # no ':' (pilot3 logs and skips it: jobdata.py:994-995)
    ("inputFor_a:x^inputFor_b", "inputFor_b"),
    ("inputFor_a:x:y", "inputFor_a:x:y"),          # two ':' (pilot3's unpacking fails: jobdata.py:992)
    ("inputFor_a:x,,y", "inputFor_a:x,,y"),        # an empty lfn
    ("inputFor_a:", "inputFor_a:"),
    (":x", ":x"),                                  # an empty name
    ("inputFor_a:x^", ""),                         # a trailing '^' leaves an empty entry
    ("inputFor_a:x^inputFor_a:y", "inputFor_a:y"),  # a name twice
])
def test_malformed_write_to_file_is_a_conversion_failure_naming_the_entry(text: str, bad: str) -> None:
    """A malformed entry is ``WriteToFileError`` (CONVERSIONFAILURE, 1302) naming the field and the entry; pilot3
    only logs it (pilot/info/jobdata.py:994-995) and would start a payload with a broken input list."""
    with pytest.raises(WriteToFileError) as caught:
        parse_write_to_file(text)
    assert caught.value.code is ErrorCode.CONVERSIONFAILURE
    assert caught.value.field == "writeToFile"
    assert caught.value.value == bad
    assert repr(bad) in str(caught.value)


@pytest.mark.parametrize("text, bad", [
    ("../inputFor_a:x", "../inputFor_a"),
    ("sub/inputFor_a:x", "sub/inputFor_a"),
    ("inputFor_..:x", "inputFor_.."),
    ("inputFor_a:../../etc/passwd", "../../etc/passwd"),
    ("inputFor_a:x\ny", "x\ny"),                   # a newline would add a line to the list
    ("inputFor_a:x y", "x y"),
    ("-rf:x", "-rf"),
    ("inputFor_" + "a" * 243 + ":x", "inputFor_" + "a" * 243),  # <name>.txt would pass 255 characters
])
@pytest.mark.reliability("bad input", "file names",
                         "writeToFile name or lfn with '..', a path, a space, a leading '-' or overlong: refused")
def test_a_name_or_lfn_that_could_escape_the_work_directory_is_refused(text: str, bad: str) -> None:
    """Names become ``<workdir>/<name>.txt`` and lfns lines of it: a path, ``..``, a space or control character, a
    leading ``-`` or an overlong name is ``BadFileNameError`` (BADOUTPUTFILENAME, 1371) naming the value."""
    with pytest.raises(BadFileNameError) as caught:
        parse_write_to_file(text)
    assert caught.value.code is ErrorCode.BADOUTPUTFILENAME
    assert caught.value.value == bad


# ------------------------------------------------------------------------------------------ job parameters
def test_the_option_is_the_text_before_the_first_equals_sign_of_the_placeholder_token() -> None:
    """``--inputHitsFile=@inputFor_x`` gives ``--inputHitsFile``; no such token gives None
    (pilot3 pilot/info/jobdata.py:970-976). Divergence: pilot3 matches a substring, so ``=@inputFor_a.1`` would be
    found in ``--in=@inputFor_a.10``; here the whole name must match."""
    assert job_option_for(JOB_PARS, f"inputFor_{OUT}") == "--inputHitsFile"
    assert job_option_for("--in=@inputFor_a.10", "inputFor_a.1") is None
    assert job_option_for("@inputFor_a", "inputFor_a") is None


def test_rewrite_makes_the_placeholder_a_file_argument_and_drops_auto_configuration() -> None:
    """``--inputHitsFile=@inputFor_X`` becomes ``@inputFor_X.txt`` and ``--autoConfiguration=everything`` goes
    (pilot3 pilot/info/jobdata.py:1013-1016: the name gets ``.txt``, ``<option>=`` and the auto-configuration are
    removed, leaving their spaces)."""
    mapping = parse_write_to_file(f"inputFor_{OUT}:{','.join(RANGES)}")
    assert rewrite_job_pars(JOB_PARS, mapping) == f"@inputFor_{OUT}.txt --outputHitsFile={OUT}  --maxEvents=-1"


def test_rewrite_of_two_outputs_and_a_positional_placeholder() -> None:
    """Every entry is rewritten; a placeholder without an option only gets ``.txt`` (jobdata.py:1013-1015)."""
    mapping = parse_write_to_file("inputFor_a:x^inputFor_b:y")
    rewritten = rewrite_job_pars("--inA=@inputFor_a @inputFor_b --out=o", mapping)
    assert rewritten == "@inputFor_a.txt @inputFor_b.txt --out=o"


def test_without_entries_the_parameters_stay_as_they_are() -> None:
    """An empty ``writeToFile`` changes nothing, auto-configuration included (pilot3 jobdata.py:997)."""
    assert rewrite_job_pars(JOB_PARS, parse_write_to_file("")) == JOB_PARS


def test_a_name_that_prefixes_another_is_not_corrupted() -> None:
    """Divergence: pilot3 replaces bare substrings (jobdata.py:1013), so ``inputFor_a.1`` inside ``inputFor_a.10``
    would become ``inputFor_a.1.txt0``; here whole names are replaced."""
    mapping = parse_write_to_file("inputFor_a.1:x^inputFor_a.10:y")
    assert rewrite_job_pars("--a=@inputFor_a.1 --b=@inputFor_a.10", mapping) == "@inputFor_a.1.txt @inputFor_a.10.txt"


# --------------------------------------------------------------------------------------------- input lists
def test_the_list_holds_the_option_then_one_lfn_a_line(workdir: Path) -> None:
    """``<workdir>/inputFor_X.txt`` is the option line, then each lfn, every line ending in a newline
    (pilot3 pilot/info/jobdata.py:1000-1010), readable by the payload (0644)."""
    mapping = parse_write_to_file(f"inputFor_{OUT}:{','.join(RANGES)}^inputFor_b:z")
    written = write_input_lists(workdir, JOB_PARS, mapping)
    assert written == (workdir / f"inputFor_{OUT}.txt", workdir / "inputFor_b.txt")
    assert written[0].read_text() == f"--inputHitsFile\n{RANGES[0]}\n{RANGES[1]}\n"
    assert written[1].read_text() == "z\n"  # no option in jobPars: the lfns only (jobdata.py:1005-1008)
    assert stat.S_IMODE(written[0].stat().st_mode) == 0o644
    assert listing(workdir) == {f"inputFor_{OUT}.txt", "inputFor_b.txt"}


@pytest.mark.parametrize("name", ["../escaped", "sub/inputFor_a", ".."])
@pytest.mark.reliability("bad input", "file names", "input list name with '..' or a path: nothing written outside")
def test_a_hand_made_mapping_cannot_write_outside_the_work_directory(workdir: Path, name: str) -> None:
    """A mapping not made by the parser is checked too: nothing lands beside or above the work directory."""
    with pytest.raises(BadFileNameError) as caught:
        write_input_lists(workdir, "", {name: ("x",)})
    assert caught.value.code is ErrorCode.BADOUTPUTFILENAME
    assert listing(workdir.parent) == {"work"}


# ------------------------------------------------------------------------------------------------ archives
def test_a_pilot3_premerge_tar_is_unpacked_into_the_work_directory(tmp_path: Path, workdir: Path) -> None:
    """pilot3 untars each ``is_tar`` input into the work directory (pilot/control/payloads/eventservicemerge.py:52-76);
    the members are the range outputs' base names (genericexecutor.py:176)."""
    archive = pilot3_tar(workdir / PREMERGE, *range_outputs(tmp_path / "ranges"))
    files, size = unpack_archive(archive, workdir, max_bytes=10_000)
    assert files == tuple(workdir / name for name in RANGES)
    assert [f.read_text() for f in files] == [f"events of {name}" for name in RANGES]
    assert size == sum(len(f"events of {name}") for name in RANGES)


def test_a_zip_and_a_compressed_tar_with_a_subdirectory_are_unpacked(tmp_path: Path, workdir: Path) -> None:
    """A zip (the ES zip files panda-server names ``zip://``) and a gzip tar (``tar -xf`` reads both compressions)
    unpack, directories included."""
    with zipfile.ZipFile(workdir / "ranges.zip", "w") as zipped:
        zipped.writestr("a.pool.root.1.r1", b"AAA")
        zipped.writestr("sub/", b"")
        zipped.writestr("sub/b.pool.root.1.r2", b"BB")
    files, size = unpack_archive(workdir / "ranges.zip", workdir, max_bytes=5)
    assert (files, size) == ((workdir / "a.pool.root.1.r1", workdir / "sub" / "b.pool.root.1.r2"), 5)
    assert (workdir / "sub" / "b.pool.root.1.r2").read_bytes() == b"BB"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "c.r3").write_bytes(b"C")
    subprocess.run(["tar", "-czf", str(workdir / "more.tar"), "-C", str(tmp_path / "src"), "."], check=True)
    assert unpack_archive(workdir / "more.tar", workdir, max_bytes=1) == ((workdir / "c.r3",), 1)


@pytest.mark.parametrize("hostile", [
    member("../escaped"),
    member("ok/../../escaped"),
    member("/tmp/absolute-member"),
    member("evil\nname"),
    member("link", tarfile.SYMTYPE, "/etc/passwd"),
    member("hard", tarfile.LNKTYPE, "/etc/passwd"),
    member("dev", tarfile.CHRTYPE),
    member("fifo", tarfile.FIFOTYPE),
])
@pytest.mark.reliability("bad input", "file names",
                         "tar member with '..', absolute, symlink, hard link or device: refused, nothing written")
def test_a_hostile_tar_member_is_refused_before_anything_is_written(workdir: Path, hostile: tarfile.TarInfo) -> None:
    """A member leaving the work directory, absolute, badly named, a symlink, a hard link or a device is
    ``UnsafeArchiveError`` (FILEHANDLINGFAILURE, 1303) naming it; the harmless member before it is not written
    either. (pilot3 runs a plain ``tar -xf``, which creates links and devices: eventservicemerge.py:59-62.)"""
    archive = tar_with(workdir / "bad.tar", (member("harmless.r1"), b"x"), (hostile, b"payload"))
    with pytest.raises(UnsafeArchiveError) as caught:
        unpack_archive(archive, workdir, max_bytes=1000)
    assert caught.value.code is ErrorCode.FILEHANDLINGFAILURE
    assert repr(hostile.name) in str(caught.value)
    assert listing(workdir.parent) == {"work", "work/bad.tar"}
    assert not Path("/tmp/absolute-member").exists()


@pytest.mark.reliability("bad input", "file names", "zip member that is a symlink: refused, nothing written")
def test_a_zip_symlink_member_is_refused(tmp_path: Path, workdir: Path) -> None:
    """A zip member whose Unix mode is a symlink (``zip -y`` stores links so) is ``UnsafeArchiveError`` (1303),
    nothing written; the same archive made without ``-y`` (the link's target stored as a file) unpacks."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "fine.r1").write_text("x")
    (src / "link").symlink_to("/etc/passwd")
    subprocess.run(["zip", "-q", "-y", str(workdir / "bad.zip"), "fine.r1", "link"], cwd=src, check=True)
    with pytest.raises(UnsafeArchiveError) as caught:
        unpack_archive(workdir / "bad.zip", workdir, max_bytes=1 << 20)
    assert caught.value.code is ErrorCode.FILEHANDLINGFAILURE
    assert "'link'" in str(caught.value)
    assert listing(workdir) == {"bad.zip"}
    subprocess.run(["zip", "-q", str(workdir / "good.zip"), "fine.r1", "link"], cwd=src, check=True)
    files, _ = unpack_archive(workdir / "good.zip", workdir, max_bytes=1 << 20)
    assert files == (workdir / "fine.r1", workdir / "link") and not (workdir / "link").is_symlink()


@pytest.mark.reliability("bad input", "file names", "zip member with '..': refused")
def test_a_zip_member_leaving_the_work_directory_is_refused(workdir: Path) -> None:
    """A zip member ``../x`` is ``UnsafeArchiveError`` (1303) too."""
    with zipfile.ZipFile(workdir / "bad.zip", "w") as zipped:
        zipped.writestr("../x", b"x")
    with pytest.raises(UnsafeArchiveError):
        unpack_archive(workdir / "bad.zip", workdir, max_bytes=1000)
    assert listing(workdir.parent) == {"work", "work/bad.zip"}


def test_an_archive_larger_than_allowed_is_refused_before_anything_is_written(workdir: Path) -> None:
    """The members' declared sizes above ``max_bytes`` are ``ArchiveTooLargeError`` (SIZETOOLARGE, 1168)."""
    archive = tar_with(workdir / "big.tar", (member("a.r1"), b"x" * 600), (member("b.r2"), b"y" * 600))
    with pytest.raises(ArchiveTooLargeError) as caught:
        unpack_archive(archive, workdir, max_bytes=1000)
    assert caught.value.code is ErrorCode.SIZETOOLARGE
    assert listing(workdir) == {"big.tar"}
    assert unpack_archive(archive, workdir, max_bytes=1200)[1] == 1200


def test_a_compression_bomb_is_refused_from_its_headers(workdir: Path) -> None:
    """A gzip tar declaring 64 MiB is refused at its header for a 1 MiB bound, nothing written."""
    with tarfile.open(workdir / "bomb.tar", "w:gz") as tar:
        info = member("zeros.r1")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert (workdir / "bomb.tar").stat().st_size < 1 << 20
    with pytest.raises(ArchiveTooLargeError):
        unpack_archive(workdir / "bomb.tar", workdir, max_bytes=1 << 20)
    assert listing(workdir) == {"bomb.tar"}


def test_a_member_never_overwrites_a_file_of_the_work_directory(workdir: Path) -> None:
    """A member named like an existing file is ``MemberExistsError`` (FILEEXISTS, 1221); the file is untouched."""
    (workdir / "PoolFileCatalog.xml").write_text("mine")
    archive = tar_with(workdir / "a.tar", (member("PoolFileCatalog.xml"), b"theirs"))
    with pytest.raises(MemberExistsError) as caught:
        unpack_archive(archive, workdir, max_bytes=100)
    assert caught.value.code is ErrorCode.FILEEXISTS
    assert (workdir / "PoolFileCatalog.xml").read_text() == "mine"


@pytest.mark.reliability("bad input", "file names",
                         "archive member through or onto a symlink of the work directory: never followed")
def test_a_symlink_in_the_work_directory_is_never_followed(tmp_path: Path, workdir: Path, ledger: Ledger) -> None:
    """A symlink already in the work directory (a pre-staged input link) leads nowhere: a member through a linked
    directory is ``UnsafeArchiveError``, a member onto a linked file is ``MemberExistsError``; outside is untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_text("outside")
    (workdir / "linkdir").symlink_to(outside)
    (workdir / "linkfile").symlink_to(outside / "target")
    with pytest.raises(UnsafeArchiveError):
        unpack_archive(tar_with(workdir / "a.tar", (member("linkdir/new"), b"x")), workdir, max_bytes=100)
    with pytest.raises(MemberExistsError):
        unpack_archive(tar_with(workdir / "b.tar", (member("linkfile"), b"x")), workdir, max_bytes=100)
    assert listing(outside) == {"target"}
    assert (outside / "target").read_text() == "outside"
    ledger.add(inputs_tried=2)


def test_missing_unreadable_or_corrupt_archives_are_file_handling_failures(workdir: Path) -> None:
    """A missing archive, a file that is no archive and a truncated tar are ``BadArchiveError`` (1303); pilot3
    ignores ``tar``'s exit code and starts the merge without its inputs (eventservicemerge.py:62-63)."""
    (workdir / "text.tar").write_text("not an archive at all\n" * 40)
    archive = tar_with(workdir / "cut.tar", (member("a.r1"), os.urandom(20_000)))
    archive.write_bytes(archive.read_bytes()[:10_000])
    for path in (workdir / "absent.tar", workdir / "text.tar", archive):
        with pytest.raises(BadArchiveError) as caught:
            unpack_archive(path, workdir, max_bytes=1 << 20)
        assert caught.value.code is ErrorCode.FILEHANDLINGFAILURE
        assert path.name in str(caught.value)


def test_a_full_disk_while_unpacking_is_no_local_space(small_fs: Path, tmp_path: Path) -> None:
    """Unpacking 20 MiB onto a real 16 MiB file system is ``NoLocalSpaceError`` (NOLOCALSPACE, 1098)."""
    archive = tar_with(tmp_path / "huge.tar", (member("big.r1"), bytes(20 << 20)))
    with pytest.raises(NoLocalSpaceError) as caught:
        unpack_archive(archive, small_fs, max_bytes=1 << 30)
    assert caught.value.code is ErrorCode.NOLOCALSPACE


# ----------------------------------------------------------------------------------------------- the entry
def test_prepare_merge_unpacks_writes_the_lists_and_rewrites_the_parameters(tmp_path: Path, workdir: Path) -> None:
    """The whole preparation on a merge job whose range outputs come in pilot3 premerge tars: the tars are
    unpacked, then the list is written and the parameters rewritten (pilot3 eventservicemerge.py:73-79). The tars
    are the inputs ``writeToFile`` does not list (panda-server job_complex_module.py:2671-2690)."""
    second = "EventService_premerge_36000001-5013009653-24039149400-2-1.tar"
    outputs = range_outputs(tmp_path / "ranges")
    pilot3_tar(workdir / PREMERGE, outputs[0])
    pilot3_tar(workdir / second, outputs[1])
    job = merge_job(f"inputFor_{OUT}:{','.join(RANGES)}", f"{PREMERGE},{second}")
    done = prepare_merge(job, workdir, max_bytes=1000)
    assert done == MergePreparation(
        job_pars=f"@inputFor_{OUT}.txt --outputHitsFile={OUT}  --maxEvents=-1",
        written=(workdir / f"inputFor_{OUT}.txt",),
        extracted=tuple(workdir / name for name in RANGES),
    )
    assert (workdir / f"inputFor_{OUT}.txt").read_text() == f"--inputHitsFile\n{RANGES[0]}\n{RANGES[1]}\n"
    assert all((workdir / name).read_text() == f"events of {name}" for name in RANGES)


def test_prepare_merge_of_plain_inputs_unpacks_nothing(workdir: Path) -> None:
    """Range outputs that arrive as inputs themselves (panda-server's no-zip case, job_complex_module.py:2673-2677)
    are listed and left alone."""
    for name in RANGES:
        (workdir / name).write_text("x")
    done = prepare_merge(merge_job(f"inputFor_{OUT}:{','.join(RANGES)}", ",".join(RANGES)), workdir, max_bytes=0)
    assert done.extracted == ()
    assert listing(workdir) == {*RANGES, f"inputFor_{OUT}.txt"}


def test_the_archives_can_be_named_and_share_one_bound(workdir: Path) -> None:
    """``archives`` names the archive inputs (pilot3's ``is_tar`` from ``zip://``, pilot/info/filespec.py:154-156),
    whatever their names; ``max_bytes`` bounds them together: the second one passes it."""
    tar_with(workdir / "first.bin", (member("a.r1"), b"x" * 60))
    tar_with(workdir / "second.bin", (member("b.r2"), b"y" * 60))
    job = merge_job("inputFor_o:a.r1,b.r2", "first.bin,second.bin", job_pars="--in=@inputFor_o")
    assert prepare_merge(job, workdir, max_bytes=120, archives={"first.bin", "second.bin"}).extracted == (
        workdir / "a.r1", workdir / "b.r2")
    for name in ("a.r1", "b.r2", "inputFor_o.txt"):
        (workdir / name).unlink()
    with pytest.raises(ArchiveTooLargeError):
        prepare_merge(job, workdir, max_bytes=100, archives={"first.bin", "second.bin"})
    assert (workdir / "a.r1").exists() and not (workdir / "b.r2").exists()
    assert prepare_merge(job, workdir, max_bytes=0, archives=set()).extracted == ()  # named: .bin is not guessed


def test_a_malformed_write_to_file_stops_before_anything_is_unpacked(tmp_path: Path, workdir: Path) -> None:
    """``writeToFile`` is parsed first: a bad one leaves the work directory as it was."""
    pilot3_tar(workdir / PREMERGE, *range_outputs(tmp_path / "ranges"))
    with pytest.raises(WriteToFileError):
        prepare_merge(merge_job(f"inputFor_{OUT}", PREMERGE), workdir, max_bytes=1000)
    assert listing(workdir) == {PREMERGE}


def test_prepare_merge_is_for_merge_jobs_only(workdir: Path) -> None:
    """A job without ``eventServiceMerge`` is a programming error (ValueError), not a job failure."""
    with pytest.raises(ValueError, match="4242"):
        prepare_merge(merge_job("inputFor_o:a", "a", merge=False), workdir, max_bytes=0)
