"""The built-in copytools. Each module imports its backend library lazily, inside its methods.

They are registered under the ``pilotlib.copytools`` entry-point group (see pyproject.toml) and found through
:class:`pilotlib.transfer.CopytoolRegistry`; import them directly only to build one by hand.
"""

from pilotlib.transfer.copytools.gfal import GfalCopytool
from pilotlib.transfer.copytools.lsm import LsmCopytool
from pilotlib.transfer.copytools.mv import CpCopytool, MvCopytool, SymlinkCopytool
from pilotlib.transfer.copytools.xrdcp import XrdcpCopytool

__all__ = ["CpCopytool", "GfalCopytool", "LsmCopytool", "MvCopytool", "SymlinkCopytool", "XrdcpCopytool"]
