"""The processes of a real federation: server parent and job, site parent and job."""

from fedra.runtime.config import ServerKit, SiteKit
from fedra.runtime.protocol import RESTART_EXIT_CODE

__all__ = ["RESTART_EXIT_CODE", "ServerKit", "SiteKit"]
