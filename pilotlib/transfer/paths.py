"""Deterministic storage paths and storage protocol values.

On a deterministic storage a file's path is computed from its DID, as PanDA and Rucio do it
(PanDAWMS/pilot3 ``pilot/api/data.py``, ``StageOutClient.get_path``)::

    <scope with dots as slashes>/<md5("scope:lfn")[0:2]>/<md5("scope:lfn")[2:4]>/<lfn>

under the storage protocol's endpoint and path (``root://host:1094`` + ``/atlas/rucio``).
"""

from __future__ import annotations

import hashlib

import attrs

__all__ = ["StorageProtocol", "deterministic_path", "deterministic_url"]


def deterministic_path(scope: str, lfn: str) -> str:
    """The relative path of ``scope:lfn`` on a deterministic storage (``"user/jdoe/ab/cd/file.root"``)."""
    digest = hashlib.md5(f"{scope}:{lfn}".encode(), usedforsecurity=False).hexdigest()
    parts = [*scope.split("."), digest[0:2], digest[2:4], lfn]
    return "/".join(part for part in parts if part)


@attrs.frozen
class StorageProtocol:
    """One way to reach a storage (a DDM endpoint) for one activity.

    Attributes:
        endpoint: scheme, host and port, ``root://eosatlas.cern.ch:1094`` (``file://`` for a local directory).
        path: the storage's base path, ``/eos/atlas/rucio``.
    """

    endpoint: str
    path: str = "/"

    @property
    def scheme(self) -> str:
        """The URL scheme (``root``)."""
        return self.endpoint.partition("://")[0].lower()

    def url_for(self, scope: str, lfn: str) -> str:
        """The deterministic URL of ``scope:lfn`` through this protocol."""
        return deterministic_url(self, scope, lfn)


def deterministic_url(protocol: StorageProtocol, scope: str, lfn: str) -> str:
    """Join the protocol's endpoint, its path and :func:`deterministic_path` with single slashes.

    XRootD URLs keep the double slash after the host (``root://host:1094//eos/...``), as ``xrdcp`` expects an
    absolute path there.
    """
    scheme, sep, rest = protocol.endpoint.partition("://")
    base = f"{scheme}{sep}{rest.rstrip('/')}"  # "file://" keeps its slashes: file:///data/...
    path = "/" + "/".join(p for p in (protocol.path.strip("/"), deterministic_path(scope, lfn)) if p)
    if protocol.scheme == "root":
        return f"{base}/{path}"
    return f"{base}{path}"
