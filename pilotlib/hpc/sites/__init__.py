"""Site profiles: plain-Python modules, one per site, found through the ``pilotlib.hpc_sites`` entry-point group.

pilotlib ships ``generic`` (:class:`GenericSite`) and ``olcf`` (:class:`RamDiskSite`, work directories on a RAM
disk). A site adds its own by declaring, in its own package's ``pyproject.toml``::

    [project.entry-points."pilotlib.hpc_sites"]
    mysite = "mysite.profile:MySite"

where ``MySite.from_options(options)`` builds a :class:`SiteProfile` from the ``--site-option`` settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points

from pilotlib.errors import SetupFailureError
from pilotlib.hpc.sites.base import SiteProfile, option_float, option_list
from pilotlib.hpc.sites.generic import GenericSite, payload_setup_lines
from pilotlib.hpc.sites.olcf import RamDiskSite

__all__ = ["GROUP", "GenericSite", "RamDiskSite", "SiteProfile", "load_site", "option_float", "option_list",
           "payload_setup_lines", "site_names"]

GROUP = "pilotlib.hpc_sites"


def site_names() -> tuple[str, ...]:
    """The installed site profiles, sorted."""
    return tuple(sorted(point.name for point in entry_points(group=GROUP)))


def load_site(name: str, options: Mapping[str, str]) -> SiteProfile:
    """The installed profile ``name`` made from ``options``.

    Raises:
        SetupFailureError: no such profile, its plug-in cannot be loaded, or an option is not valid (1110).
    """
    point = next((p for p in entry_points(group=GROUP) if p.name == name), None)
    if point is None:
        raise SetupFailureError(f"no site profile {name!r} (installed: {', '.join(site_names()) or 'none'})")
    try:
        factory = point.load()
    except (ImportError, AttributeError) as exc:
        raise SetupFailureError(f"site profile {name!r} cannot be loaded: {exc}") from exc
    profile: SiteProfile = factory.from_options(options)
    return profile
