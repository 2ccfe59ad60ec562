"""An event-service merge job's preparation: unpack its archives, write its input lists, rewrite its ``jobPars``.

The event-range outputs that ``writeToFile`` lists are inputs or members of archive inputs, which panda-server
sends as ``zip://<name>`` and never lists (``pandaserver/taskbuffer/db_proxy_mods/job_complex_module.py:2671-2690``;
pilot3 flags them ``is_tar``, ``pilot/info/filespec.py:154-156``). See ``docs/eventservice-merge.rst``."""

from __future__ import annotations

import errno
import functools
import io
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import IO, NamedTuple

import attrs

from pilotlib import errors
from pilotlib._atomic import write_atomic
from pilotlib.job import MAX_LFN_LENGTH, Job

__all__ = ["ARCHIVE_SUFFIXES", "ArchiveTooLargeError", "BadArchiveError", "MemberExistsError", "MergePreparation",
           "UnsafeArchiveError", "WriteToFileError", "job_option_for", "parse_write_to_file", "prepare_merge",
           "rewrite_job_pars", "unpack_archive", "write_input_lists"]

#: Without an explicit list, the inputs with these endings that ``writeToFile`` does not list are the archives.
ARCHIVE_SUFFIXES = (".tar", ".zip")
_MapT = Mapping[str, tuple[str, ...]]


class WriteToFileError(errors.JobDefinitionError):
    """``writeToFile`` is malformed (``CONVERSIONFAILURE``, 1302; pilot3 logs it: ``pilot/info/jobdata.py:995``)."""


class BadArchiveError(errors.FileHandlingError):
    """An archive input is missing, is neither tar nor zip, is corrupt or cannot be unpacked (1303)."""


class UnsafeArchiveError(errors.FileHandlingError):
    """An archive member is a link or device, or its path is absolute or leaves the work directory (1303)."""


class ArchiveTooLargeError(errors.PilotError):
    """The archives hold more bytes than allowed (``SIZETOOLARGE``, 1168)."""
    code = errors.ErrorCode.SIZETOOLARGE


class MemberExistsError(errors.PilotError):
    """An archive member would overwrite a file of the work directory (``FILEEXISTS``, 1221)."""
    code = errors.ErrorCode.FILEEXISTS


@attrs.frozen
class MergePreparation:
    """What :func:`prepare_merge` did: the payload's new parameters, the lists written, the files unpacked."""
    job_pars: str
    written: tuple[Path, ...]
    extracted: tuple[Path, ...]


def _checked(value: str, entry: str, what: str) -> str:
    if not value:
        raise WriteToFileError("writeToFile", entry, f"empty {what}")
    longest = MAX_LFN_LENGTH - (len(".txt") if what == "name" else 0)
    bad = any(c in value for c in "/\\") or ".." in value or value.startswith("-") or len(value) > longest
    if bad or not value.isprintable() or any(c.isspace() for c in value):
        raise errors.BadFileNameError("writeToFile", value, f"unsafe {what}: a path, .., space or control")
    return value


def parse_write_to_file(text: str) -> _MapT:
    """``inputFor_a:l1,l2^inputFor_b:l3`` -> ``{"inputFor_a": ("l1", "l2"), "inputFor_b": ("l3",)}``, in order.

    Split as pilot3 splits it (``pilot/info/jobdata.py:988-993``); an empty text is an empty mapping. Raises
    :class:`WriteToFileError` (1302) for an entry without exactly one ``:``, an empty name or lfn, a name twice;
    :class:`~pilotlib.errors.BadFileNameError` (1371) for a name or lfn with a path, ``..``, a space or control
    character, a leading ``-``, or too long."""
    result: dict[str, tuple[str, ...]] = {}
    for entry in text.split("^") if text else ():
        name, sep, listed = entry.partition(":")
        if not sep or ":" in listed:
            raise WriteToFileError("writeToFile", entry, "expected exactly one ':' between the name and its files")
        if _checked(name, entry, "name") in result:
            raise WriteToFileError("writeToFile", entry, f"{name} is given twice")
        result[name] = tuple(_checked(lfn, entry, "file name") for lfn in listed.split(","))
    return MappingProxyType(result)


def _whole(name: str) -> str:
    return rf"(?<![\w.\-]){re.escape(name)}(?![\w.\-])"  # not part of a longer file name


def job_option_for(job_pars: str, name: str) -> str | None:
    """The option of the token ``--opt=@<name>`` (``--opt``), or None (pilot3: ``pilot/info/jobdata.py:961-976``)."""
    return found.group(1) if (found := re.search(rf"(?:^|(?<=\s))([^\s=]+)=@{_whole(name)}", job_pars)) else None


def rewrite_job_pars(job_pars: str, mapping: _MapT) -> str:
    """Each ``--opt=@name`` made ``@name.txt``; ``--autoConfiguration=everything`` dropped if ``mapping`` is not empty.

    pilot3 (``pilot/info/jobdata.py:1013-1016``) replaces substrings; here whole names only, so a name that is the
    prefix of another (``...root.1``, ``...root.10``) stays intact, and only the placeholder loses its ``--opt=``."""
    for name in mapping:
        option, new = job_option_for(job_pars, name), _checked(name, name, "name") + ".txt"
        job_pars = re.sub(_whole(name), new, job_pars)  # a checked name holds no backslash
        if option:
            job_pars = re.sub(rf"(?:^|(?<=\s)){re.escape(option)}=@{_whole(new)}", f"@{new}", job_pars)
    return job_pars.replace("--autoConfiguration=everything", "") if mapping else job_pars


def write_input_lists(workdir: Path, job_pars: str, mapping: _MapT) -> tuple[Path, ...]:
    """Write ``<workdir>/<name>.txt`` (mode 0644, atomically): the line ``--opt`` if any, then one lfn a line, as
    pilot3 writes them (``pilot/info/jobdata.py:999-1011``); names and lfns checked as :func:`parse_write_to_file` does.
    """
    written = []
    for name, lfns in mapping.items():
        option = job_option_for(job_pars, name)
        lines = ([option] if option else []) + [_checked(lfn, name, "file name") for lfn in lfns]
        path = workdir / f"{_checked(name, name, 'name')}.txt"
        write_atomic(path, "".join(f"{line}\n" for line in lines), mode=0o644)
        written.append(path)
    return tuple(written)


class _Member(NamedTuple):
    name: str
    is_dir: bool
    size: int
    open: Callable[[], IO[bytes] | None]


def _tar_members(archive: tarfile.TarFile, label: str) -> Iterator[_Member]:
    for info in archive:
        if not (info.isreg() or info.isdir()):
            raise UnsafeArchiveError(f"{label}: member {info.name!r} is a link or a device, not a file or directory")
        yield _Member(info.name, info.isdir(), info.size, functools.partial(archive.extractfile, info))


def _zip_members(archive: zipfile.ZipFile, label: str) -> Iterator[_Member]:
    for info in archive.infolist():
        if stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no Unix type given
            raise UnsafeArchiveError(f"{label}: member {info.filename!r} is a link or a device, not a file")
        yield _Member(info.filename, info.is_dir(), info.file_size, functools.partial(archive.open, info))


def _target(workdir: Path, member: _Member, label: str) -> Path:
    name, parts = member.name, PurePosixPath(member.name).parts
    if name.startswith("/") or "\\" in name or not name.isprintable() or ".." in parts or not (parts or member.is_dir):
        raise UnsafeArchiveError(f"{label}: member {name!r} is absolute, leaves the work directory or is unnamed")
    return workdir.joinpath(*parts)


def _make_dirs(workdir: Path, path: Path, label: str) -> None:  # an existing step must be a directory, not a link
    current = workdir
    for part in path.relative_to(workdir).parts:
        current = current / part
        try:
            current.mkdir()
        except FileExistsError:
            if current.is_symlink() or not current.is_dir():
                raise UnsafeArchiveError(f"{label}: {part!r} in the work directory is not a directory") from None


def _write(member: _Member, target: Path, label: str) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)  # FileExistsError if there
    with os.fdopen(fd, "wb") as out, (member.open() or io.BytesIO()) as source:
        left = member.size
        while chunk := source.read(min(1 << 20, left + 1)):
            left -= len(chunk)
            if left < 0:
                raise ArchiveTooLargeError(f"{label}: member {member.name!r} holds more than its {member.size} B")
            out.write(chunk)


def _extract(members: Iterable[_Member], workdir: Path, label: str, budget: int) -> tuple[tuple[Path, ...], int]:
    planned, total = [], 0  # every member checked (path, kind, running size) before any is written
    for member in members:
        total += 0 if member.is_dir else member.size
        if total > budget:
            raise ArchiveTooLargeError(f"{label}: the archives hold more than the {budget} B left of the bound")
        planned.append((member, _target(workdir, member, label)))
    files = []
    for member, target in planned:
        _make_dirs(workdir, target if member.is_dir else target.parent, label)
        if not member.is_dir:
            _write(member, target, label)
            files.append(target)
    return tuple(files), total


def unpack_archive(path: Path, workdir: Path, *, max_bytes: int) -> tuple[tuple[Path, ...], int]:
    """Unpack a tar (plain or compressed) or zip archive into ``workdir``; return the files written and their bytes.

    pilot3 runs ``tar -xf`` and ignores its exit code (``pilot/control/payloads/eventservicemerge.py:52-63``). Here
    every member is checked before any is written (files and directories only, relative paths without ``..``, at
    most ``max_bytes`` in all); no file is overwritten, no symlink followed. Raises :class:`BadArchiveError`
    (missing, not an archive, corrupt), :class:`UnsafeArchiveError` (a link or device member, a path out of
    ``workdir``), :class:`ArchiveTooLargeError`, :class:`MemberExistsError`, or
    :class:`~pilotlib.errors.NoLocalSpaceError` (the disk filled up)."""
    if not path.is_file():
        raise BadArchiveError(f"archive {path.name} is not in the work directory")
    try:
        if tarfile.is_tarfile(path):  # tar first: a tar whose last member is a zip passes is_zipfile
            with tarfile.open(path) as tar:
                return _extract(_tar_members(tar, path.name), workdir, path.name, max_bytes)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zipped:
                return _extract(_zip_members(zipped, path.name), workdir, path.name, max_bytes)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as exc:
        if isinstance(exc, FileExistsError):
            raise MemberExistsError(f"{path.name}: a member would overwrite {exc.filename}") from exc
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise errors.NoLocalSpaceError(f"unpacking {path.name}: {exc}") from exc
        raise BadArchiveError(f"unpacking {path.name} failed: {exc}") from exc
    raise BadArchiveError(f"{path.name} is neither a tar nor a zip archive")


def _archive_lfns(job: Job, mapping: _MapT, archives: Collection[str] | None) -> list[str]:
    if archives is not None:
        return [spec.lfn for spec in job.inputs if spec.lfn in archives]
    listed = {lfn for lfns in mapping.values() for lfn in lfns}
    return [spec.lfn for spec in job.inputs if spec.lfn not in listed and spec.lfn.endswith(ARCHIVE_SUFFIXES)]


def prepare_merge(job: Job, workdir: Path, *, max_bytes: int, archives: Collection[str] | None = None
                  ) -> MergePreparation:
    """Ready a merge job's work directory (inputs staged in) before its payload starts, in pilot3's order
    (``pilot/control/payloads/eventservicemerge.py:73-79``), ``writeToFile`` parsed before anything is written.

    ``archives`` are the input lfns that are archives (pilot3's ``is_tar``); None: the inputs ending in
    :data:`ARCHIVE_SUFFIXES` that ``writeToFile`` does not list. ``max_bytes`` bounds all archives together.
    Raises ValueError for a job that is not a merge job, else the errors of :func:`parse_write_to_file` and
    :func:`unpack_archive`."""
    if not job.event_service_merge:
        raise ValueError(f"job {job.panda_id} is not an event-service merge job")
    mapping = parse_write_to_file(job.write_to_file)
    extracted: tuple[Path, ...] = ()
    for lfn in _archive_lfns(job, mapping, archives):
        files, used = unpack_archive(workdir / lfn, workdir, max_bytes=max_bytes)
        extracted, max_bytes = extracted + files, max_bytes - used
    written = write_input_lists(workdir, job.job_pars, mapping)
    return MergePreparation(rewrite_job_pars(job.job_pars, mapping), written, extracted)
