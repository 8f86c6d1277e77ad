"""Who may be a peer, and on whose word: the project's lists, one connection per site, HA claims.

Three rules that keep one participant from speaking for another (docs/ha.md, docs/provisioning.md):

- **The project's lists** (:class:`Roster`). A provisioned kit's signed ``startup/fed_*.json``
  lists the project's admins (name, org, role) and what it has *revoked*: participants by
  name, single certificates by SHA-256 fingerprint (``sha256:<hex>``). The server admits
  only admins the project lists (with the role and org the list gives) and no revoked site
  or admin; a site runs no job signed by a revoked or unlisted admin and connects to no
  revoked server; the overseer answers no revoked peer. A kit
  without the lists (provisioned before them, or a POC kit) keeps the previous behaviour:
  any certificate of the project's CA.
- **One live connection per site identity** (:func:`take_site_slot`). The connection that
  holds a site's name keeps it while the site is heard from (heartbeats); a second
  connection with the same certificate name is refused and logged. Once the live one has
  been silent for longer than the server's ``heartbeat_timeout`` (or is closed), a newcomer
  takes its place and the old connection is closed.
- **HA on the overseer's word** (:class:`SessionClaims`). A site that claims a newer service
  session never makes the server step down by itself: the claim is logged and makes the
  server ask the overseer, at most once every :data:`ASK_INTERVAL_S` seconds, whatever the
  sites send. The overseer's answer decides.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from fedra.core import ConfigError, FedraError

log = logging.getLogger("fedra.peers")

#: Seconds between two questions to the overseer caused by sites' session claims.
ASK_INTERVAL_S = 3.0
#: How a revoked certificate is written in the lists: ``sha256:`` and 64 hex digits.
FINGERPRINT_PREFIX = "sha256:"
_HEX = frozenset("0123456789abcdef")


def revoked_entry(entry: str) -> str | None:
    """A ``revoked`` entry in its canonical form: a name as it is, a certificate fingerprint
    as ``sha256:`` and 64 lowercase hex digits (``openssl x509 -fingerprint -sha256``'s
    ``AB:CD:…`` is accepted); None when it looks like a fingerprint but is not one."""
    if not entry.lower().startswith(FINGERPRINT_PREFIX):
        return entry
    digits = entry[len(FINGERPRINT_PREFIX) :].replace(":", "").lower()
    if len(digits) != 64 or not set(digits) <= _HEX:
        return None
    return FINGERPRINT_PREFIX + digits


class SiteRefused(ConfigError):
    """A connection or a job is refused by the project's lists; the message says why."""


# -- the project's lists ------------------------------------------------------------------
@dataclass(frozen=True)
class ListedAdmin:
    """An admin as the project lists it."""

    name: str
    org: str
    role: str


@dataclass(frozen=True)
class Roster:
    """The project's admins (None: any admin of the CA) and revoked participants, from a kit."""

    admins: Mapping[str, ListedAdmin] | None = None
    revoked: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_config(cls, data: Mapping[str, Any], path: Path) -> Roster:
        """The lists in a ``fed_*.json`` (``admins``, ``revoked``); absent keys: no list."""
        return cls(admins=_admins(data.get("admins"), path), revoked=_revoked(data, path))

    def _revoked_cert(self, name: str, fingerprint: str) -> str | None:
        if fingerprint and FINGERPRINT_PREFIX + fingerprint in self.revoked:
            return f"the certificate of {name} ({FINGERPRINT_PREFIX}{fingerprint[:16]}…)"
        return None

    def admin_refusal(self, name: str, org: str, role: str, fingerprint: str = "") -> str | None:
        """Why the admin certificate (name, org, role, SHA-256 ``fingerprint``) is refused;
        None when it is admitted."""
        if name in self.revoked:
            return f"{name} ({role}, {org}) is revoked in this project"
        if cert := self._revoked_cert(name, fingerprint):
            return f"{cert} is revoked in this project"
        if self.admins is None:
            return None
        listed = self.admins.get(name)
        if listed is None:
            return f"{name} ({role}, {org}) is not an admin of this project"
        if (listed.org, listed.role) != (org, role):
            return (
                f"the certificate of {name} says {role} of {org}, the project says "
                f"{listed.role} of {listed.org}: use the kit of the latest provisioning"
            )
        return None

    def participant_refusal(self, name: str, what: str, fingerprint: str = "") -> str | None:
        """Why the site, server or overseer ``name`` (with the certificate of SHA-256
        ``fingerprint``) is refused (revoked); None if not."""
        if name in self.revoked:
            return f"{what} {name} is revoked in this project"
        if cert := self._revoked_cert(name, fingerprint):
            return f"{cert} is revoked in this project"
        return None


def _admins(value: object, path: Path) -> dict[str, ListedAdmin] | None:
    if value is None:
        return None
    bad = ConfigError(f"{path}: admins: expected a list of {{name, org, role}}, got {value!r}")
    if not isinstance(value, list):
        raise bad
    admins: dict[str, ListedAdmin] = {}
    for item in value:
        if not isinstance(item, dict):
            raise bad
        fields = [item.get(k) for k in ("name", "org", "role")]
        if not all(isinstance(f, str) for f in fields):
            raise bad
        admin = ListedAdmin(*(str(f) for f in fields))
        admins[admin.name] = admin
    return admins


def _revoked(data: Mapping[str, Any], path: Path) -> frozenset[str]:
    value = data.get("revoked")
    if value is None:
        return frozenset()
    ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
    entries = [revoked_entry(x) for x in value] if ok else [None]
    if not all(isinstance(x, str) for x in entries):
        raise ConfigError(
            f"{path}: revoked: expected a list of participant names and sha256:<hex> "
            f"certificate fingerprints, got {value!r}"
        )
    return frozenset(str(x) for x in entries)


def load_roster(kit_root: Path, config_file: str) -> Roster:
    """The lists of the kit at ``kit_root`` (``startup/<config_file>``)."""
    from fedra.core.jsonfile import read_json_object

    path = kit_root / "startup" / config_file
    return Roster.from_config(read_json_object(path), path)


# -- one live connection per site ------------------------------------------------------------
class Slot(Protocol):
    """What :func:`take_site_slot` reads of a connected site's handle."""

    last_seen: float

    @property
    def conn(self) -> Any:
        """The site's connection (``closed``, ``last_heard``)."""
        ...


H = TypeVar("H", bound=Slot)


def silent_for(handle: Slot, now: float) -> float:
    """Seconds since the site of ``handle`` was last heard from."""
    return now - max(handle.last_seen, float(handle.conn.last_heard))


def take_site_slot(
    sites: dict[str, H], name: str, handle: H, *, timeout: float, now: float | None = None
) -> H | None:
    """Register ``handle`` as site ``name`` unless a live connection holds the name.

    Raises :class:`SiteRefused` while the holder is open and was heard from within
    ``timeout`` seconds; otherwise ``handle`` takes the place and the previous holder (to be
    closed by the caller) is returned, or None. Call it under the registry's lock.
    """
    now = time.monotonic() if now is None else now
    old = sites.get(name)
    if old is not None and not old.conn.closed:
        quiet = silent_for(old, now)
        if quiet <= timeout:
            raise SiteRefused(
                f"{name} is already connected (last heard {quiet:.0f} s ago); a second "
                f"connection with its certificate is refused until that one has been silent "
                f"for {timeout:.0f} s"
            )
    sites[name] = handle
    return old


class _Kit(Protocol):
    """What :func:`admit_site` reads of the server's kit."""

    @property
    def roster(self) -> Roster:
        """The project's lists."""
        ...

    @property
    def heartbeat_timeout(self) -> float:
        """Seconds of silence after which a site counts as gone."""
        ...

    @property
    def sites(self) -> tuple[str, ...] | None:
        """The project's sites (None: any site of the CA)."""
        ...


class _Handle(Slot, Protocol):
    name: str
    org: str


def admit_site(sites: dict[str, Any], lock: Any, handle: _Handle, kit: _Kit) -> None:
    """Register a new site connection, or refuse it (FedraError, one log line): a revoked
    site, one the project does not list, or a second connection while the site's live one
    holds its place. A silent connection that is replaced is closed here."""
    name = handle.name
    try:
        if why := kit.roster.participant_refusal(name, "site", handle.conn.peer.fingerprint):
            raise SiteRefused(why)
        if kit.sites is not None and name not in kit.sites:
            raise SiteRefused(f"{name} is not a site of this project")
        with lock:
            old = take_site_slot(sites, name, handle, timeout=kit.heartbeat_timeout)
    except SiteRefused as exc:
        log.warning("refused site %s (%s) on the FL port: %s", name, handle.org, exc)
        raise FedraError(f"refused: {exc}") from exc
    if old is not None:
        log.warning("site %s connected again: its silent connection is closed", name)
        old.conn.close()


def admit_admin(roster: Roster, peer: Any) -> None:
    """Refuse (FedraError, one log line) an admin certificate the project does not list or
    revoked. Certificates of other roles pass: the admin service refuses them itself."""
    if peer.role in ("client", "server", "overseer"):
        return
    if why := roster.admin_refusal(peer.name, peer.org, peer.role, peer.fingerprint):
        log.warning("refused admin %s on the admin port: %s", peer.name, why)
        raise FedraError(f"refused: {why}")


# -- claims of a newer service session ----------------------------------------------------------
class SessionClaims:
    """Sites' claims of a newer service session: logged, and turned into (few) questions.

    :meth:`claim` logs who claimed what (one line per site per :data:`ASK_INTERVAL_S`, with
    the number of claims it left out) and calls ``ask`` when no question was asked within
    ``interval`` seconds. ``ask`` must return quickly (it wakes the HA agent, which asks the
    overseer in its own thread, one question at a time).
    """

    def __init__(
        self,
        ask: Callable[[str], None],
        *,
        interval: float = ASK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ask = ask
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ask = -float("inf")
        self._logged: dict[str, tuple[float, int]] = {}  # site -> (last line, claims since)

    def claim(self, site: str, ssid: object, ours: int | None, how: str) -> bool:
        """Site ``site`` claimed session ``ssid`` (ours: ``ours``) in a ``how`` message.
        Returns whether this claim made the server ask the overseer."""
        now = self._clock()
        with self._lock:
            last, left_out = self._logged.get(site, (-float("inf"), 0))
            if now - last >= self._interval:
                self._logged[site] = (now, 0)
                more = f" ({left_out} more claims left out)" if left_out else ""
                log.warning(
                    "site %s claims the newer service session %r (this server: %s) in a %s "
                    "message: asking the overseer, which alone decides%s",
                    site,
                    ssid,
                    ours,
                    how,
                    more,
                )
            else:
                self._logged[site] = (last, left_out + 1)
            if now - self._last_ask < self._interval:
                return False
            self._last_ask = now
        self._ask(f"site {site} claims service session {ssid!r}")
        return True
