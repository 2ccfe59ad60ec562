"""Checksums: adler32/md5 conventions, streaming, verification codes, and the per-file timeout."""

from __future__ import annotations

import hashlib
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotlib.errors import Direction, ErrorCode
from pilotlib.transfer import checksum as ck
from pilotlib.transfer.base import MAX_TIMEOUT, transfer_timeout
from pilotlib.transfer.errors import ChecksumCalculationError, ChecksumMismatchError, UnknownChecksumTypeError


def test_adler32_is_eight_zero_padded_lowercase_hex(tmp_path: Path) -> None:
    """adler32 of a one-byte file is written with leading zeros, 8 lowercase digits (pilot3 convention)."""
    path = tmp_path / "f"
    path.write_bytes(b"a")
    assert ck.calculate_checksum(path) == "00620062"
    path.write_bytes(b"")
    assert ck.calculate_checksum(path, "ad") == "00000001"


def test_streaming_matches_whole_file_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading in small chunks gives the same adler32 and md5 as hashing the whole content at once."""
    data = bytes(range(256)) * 1000
    path = tmp_path / "f"
    path.write_bytes(data)
    monkeypatch.setattr(ck, "CHUNK_SIZE", 777)
    assert ck.calculate_checksum(path, "adler32") == f"{zlib.adler32(data):08x}"
    assert ck.calculate_checksum(path, "md5sum") == hashlib.md5(data).hexdigest()


@given(st.binary(max_size=5000))
def test_adler32_property(data: bytes) -> None:
    """For any content, the streamed adler32 equals zlib's, zero-padded."""
    with tempfile.NamedTemporaryFile() as handle:
        handle.write(data)
        handle.flush()
        assert ck.calculate_checksum(handle.name) == f"{zlib.adler32(data):08x}"


def test_unknown_type_has_its_code(tmp_path: Path) -> None:
    """sha1 is refused with UNKNOWNCHECKSUMTYPE (1314)."""
    with pytest.raises(UnknownChecksumTypeError) as err:
        ck.calculate_checksum(tmp_path / "x", "sha1")
    assert err.value.code == ErrorCode.UNKNOWNCHECKSUMTYPE


def test_unreadable_file_is_calc_failure(tmp_path: Path) -> None:
    """A missing file gives CHECKSUMCALCFAILURE (1366), not a bare OSError."""
    with pytest.raises(ChecksumCalculationError) as err:
        ck.calculate_checksum(tmp_path / "missing")
    assert err.value.code == ErrorCode.CHECKSUMCALCFAILURE


@pytest.mark.parametrize(
    ("kind", "direction", "code"),
    [
        ("adler32", Direction.STAGE_IN, ErrorCode.GETADMISMATCH),
        ("adler32", Direction.STAGE_OUT, ErrorCode.PUTADMISMATCH),
        ("md5", Direction.STAGE_IN, ErrorCode.GETMD5MISMATCH),
        ("md5", Direction.STAGE_OUT, ErrorCode.PUTMD5MISMATCH),
    ],
)
def test_mismatch_codes(tmp_path: Path, kind: str, direction: Direction, code: ErrorCode) -> None:
    """A wrong expected value raises ChecksumMismatchError with the code of its type and direction."""
    path = tmp_path / "f"
    path.write_bytes(b"payload")
    with pytest.raises(ChecksumMismatchError) as err:
        ck.verify_checksum(path, (kind, "0"), direction)
    assert err.value.code == code
    assert err.value.actual == ck.calculate_checksum(path, kind)


def test_verify_accepts_unpadded_uppercase(tmp_path: Path) -> None:
    """An expected adler32 without leading zeros and in upper case still matches."""
    path = tmp_path / "f"
    path.write_bytes(b"a")
    assert ck.verify_checksum(path, ("AD", "620062"), Direction.STAGE_IN) == ("adler32", "00620062")


def test_timeout_formula() -> None:
    """400 s plus 1 s per MB, capped at 3 hours; unknown size gets the minimum."""
    assert transfer_timeout(None) == 400.0
    assert transfer_timeout(256_000_000) == 656.0
    assert transfer_timeout(10**12) == MAX_TIMEOUT == 10800.0


def test_running_checksum_matches_file_checksum(tmp_path: Path) -> None:
    """Feeding chunks to RunningChecksum gives the same values as reading the file."""
    data = bytes(range(256)) * 300
    path = tmp_path / "f"
    path.write_bytes(data)
    for kind in ("adler32", "md5"):
        running = ck.RunningChecksum(kind)
        for start in range(0, len(data), 1000):
            running.update(data[start:start + 1000])
        assert running.value == ck.calculate_checksum(path, kind)
