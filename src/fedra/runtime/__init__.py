"""The processes of a real federation: server parent and job, site parent and job."""

from fedra.protocol import RESTART_EXIT_CODE
from fedra.runtime.config import ServerKit, SiteKit
from fedra.runtime.kit_local import write_local

__all__ = ["RESTART_EXIT_CODE", "ServerKit", "SiteKit", "write_local"]
