"""Talking to PanDA: where jobs come from and where reports go.

Three implementations of the same interfaces (:class:`JobSource`, :class:`JobReporter`, :class:`EventRangeSource`):
the dispatcher client (:class:`PandaClient`, legacy and v1 dialects), Harvester's shared files
(:class:`HarvesterJobSource`, :class:`HarvesterReporter`, :class:`HarvesterEventRanges`) and the NorduGrid/ARC launch
directory (:class:`ArcJobSource`, :class:`ArcReporter`). The app chooses one.
"""

import importlib
from typing import TYPE_CHECKING

from pilotlib.panda.base import (
    EventRange,
    EventRangeSource,
    EventRangeUpdate,
    JobReporter,
    JobRequest,
    JobSource,
    JobUpdate,
    ServerCommand,
    UpdateAnswer,
    ZipRecord,
)

if TYPE_CHECKING:
    from pilotlib.panda.arc import ArcJobSource, ArcOutput, ArcReporter, output_list_entries
    from pilotlib.panda.client import (
        BearerToken,
        CallRetry,
        Credentials,
        KeyPair,
        PandaClient,
        Timeouts,
        X509Proxy,
    )
    from pilotlib.panda.errors import (
        CommunicationError,
        CredentialError,
        ServerAnswerError,
        ServerHTTPError,
        ServerRefusedError,
    )
    from pilotlib.panda.harvester import (
        Consume,
        HarvesterEventRanges,
        HarvesterFiles,
        HarvesterJobSource,
        HarvesterReporter,
        StageOutFile,
    )

# The implementations load on first use: a pilot in one mode does not pay for the others' imports (the dispatcher
# client brings requests and ssl).
_LAZY = {
    **dict.fromkeys(("ArcJobSource", "ArcOutput", "ArcReporter", "output_list_entries"), "pilotlib.panda.arc"),
    **dict.fromkeys(
        ("BearerToken", "CallRetry", "Credentials", "KeyPair", "PandaClient", "Timeouts", "X509Proxy"),
        "pilotlib.panda.client",
    ),
    **dict.fromkeys(
        ("CommunicationError", "CredentialError", "ServerAnswerError", "ServerHTTPError", "ServerRefusedError"),
        "pilotlib.panda.errors",
    ),
    **dict.fromkeys(
        ("Consume", "HarvesterEventRanges", "HarvesterFiles", "HarvesterJobSource", "HarvesterReporter",
         "StageOutFile"),
        "pilotlib.panda.harvester",
    ),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ArcJobSource",
    "ArcOutput",
    "ArcReporter",
    "BearerToken",
    "CallRetry",
    "CommunicationError",
    "Consume",
    "CredentialError",
    "Credentials",
    "EventRange",
    "EventRangeSource",
    "EventRangeUpdate",
    "HarvesterEventRanges",
    "HarvesterFiles",
    "HarvesterJobSource",
    "HarvesterReporter",
    "JobReporter",
    "JobRequest",
    "JobSource",
    "JobUpdate",
    "KeyPair",
    "PandaClient",
    "ServerAnswerError",
    "ServerCommand",
    "ServerHTTPError",
    "ServerRefusedError",
    "StageOutFile",
    "Timeouts",
    "UpdateAnswer",
    "X509Proxy",
    "ZipRecord",
    "output_list_entries",
]
