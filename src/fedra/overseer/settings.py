"""The overseer's few timing settings, validated once.

============================  =======  ====================================================
setting                       default  meaning
============================  =======  ====================================================
``heartbeat_interval``        2 s      how often servers, sites and admins heartbeat (sent
                                       to them in every answer)
``heartbeat_timeout``         10 s     a server not heard from for this long is not live
``lease``                     8 s      how long the hot server may act after it *sent* a
                                       heartbeat whose answer granted it the lease
``lease_margin``              2 s      extra wait before anyone else gets a lease (covers
                                       clock-rate differences and delays)
============================  =======  ====================================================

A silent hot server is replaced once both ``heartbeat_timeout`` has passed since its last
heartbeat and ``lease + lease_margin`` since its last lease renewal: with the defaults, after
10 s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from fedra.core import ConfigError

#: The keys of :class:`OverseerSettings`, as they appear in the overseer's config files.
SETTING_KEYS = ("heartbeat_interval", "heartbeat_timeout", "lease", "lease_margin")


@dataclass(frozen=True)
class OverseerSettings:
    """Timing of heartbeats, liveness and the hot server's lease (seconds).

    Raises :class:`fedra.core.ConfigError` unless every value is a finite positive number
    (``lease_margin`` may be 0), ``heartbeat_interval < heartbeat_timeout`` and
    ``heartbeat_interval < lease`` (a hot server heartbeating on time never loses its lease).
    """

    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 10.0
    lease: float = 8.0
    lease_margin: float = 2.0

    def __post_init__(self) -> None:
        for key in SETTING_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"overseer setting {key}: expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0 or (value == 0 and key != "lease_margin"):
                raise ConfigError(
                    f"overseer setting {key}: expected a positive number of seconds, got {value!r}"
                )
        if self.heartbeat_interval >= self.heartbeat_timeout:
            raise ConfigError(
                f"overseer setting heartbeat_timeout ({self.heartbeat_timeout:g}) must exceed "
                f"heartbeat_interval ({self.heartbeat_interval:g})"
            )
        if self.heartbeat_interval >= self.lease:
            raise ConfigError(
                f"overseer setting lease ({self.lease:g}) must exceed "
                f"heartbeat_interval ({self.heartbeat_interval:g})"
            )

    @property
    def promotion_delay(self) -> float:
        """How long after a hot server's last heartbeat (and renewal) a standby replaces it."""
        return max(self.heartbeat_timeout, self.lease + self.lease_margin)

    def to_json(self) -> dict[str, float]:
        """The settings as a JSON object (the keys of :data:`SETTING_KEYS`)."""
        return {key: float(value) for key, value in asdict(self).items()}

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, where: str, base: OverseerSettings | None = None
    ) -> OverseerSettings:
        """Settings from the :data:`SETTING_KEYS` of ``data`` (other keys are ignored);
        missing keys keep their value in ``base`` (default: the defaults).

        ``where`` names the file in error messages.
        """
        values = asdict(base or cls())
        for key in SETTING_KEYS:
            if key in data:
                values[key] = data[key]
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from err
