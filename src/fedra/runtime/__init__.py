"""The processes of a real federation: server parent and job, site parent and job."""

from fedra.protocol import RESTART_EXIT_CODE
from fedra.runtime.config import ServerKit, SiteKit

__all__ = ["RESTART_EXIT_CODE", "ServerKit", "SiteKit"]
