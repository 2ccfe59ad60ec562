"""Transfer log lines never show the secrets a storage URL may carry (signed query, user info)."""

from __future__ import annotations

import logging

import pytest

from pilotlib._redact import redact_url
from pilotlib.errors import Direction
from pilotlib.transfer._staging import log_start


def test_start_line_hides_query_and_user_info(caplog: pytest.LogCaptureFixture) -> None:
    """A presigned URL's signature and a URL's password never reach the log; the host and path do."""
    url = "https://user:hunter2@s3.example.org:443/bucket/out.root?X-Amz-Signature=deadbeef&X-Amz-Credential=k"
    with caplog.at_level(logging.INFO, logger="pilotlib.transfer"):
        log_start(Direction.STAGE_OUT, "out.root", "gfal", 10, url)
    text = caplog.text
    assert "hunter2" not in text and "deadbeef" not in text and "=k" not in text
    assert "https://***@s3.example.org:443/bucket/out.root?X-Amz-Signature=***&X-Amz-Credential=***" in text


@pytest.mark.parametrize("text", ["mc23:EVNT.pool.root", "/data/in/EVNT.pool.root", "EVNT.pool.root"])
def test_text_that_is_not_a_url_is_shown_as_is(text: str) -> None:
    """DIDs and local paths are not URLs and are shown unchanged."""
    assert redact_url(text) == text
