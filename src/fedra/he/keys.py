"""CKKS key material: make it once, hand each participant its share, load it back.

The sites of a federation share one CKKS context **with** its secret key (they encrypt what
they send and decrypt what they receive); the server gets the same context **without** it
(``make_context_public()``), which is enough to add ciphertexts and multiply them by plain
numbers, and not enough to read them. Files live in each participant's ``startup/`` folder:

- ``he_context.tenseal`` on every site (mode 0600): the full context, secret key included;
- ``he_public_context.tenseal`` on the server: the public context.

Neither file holds relinearisation or Galois keys: weighted averaging never multiplies two
ciphertexts nor rotates one, so the files stay small (about 0.7 and 0.5 MB at the defaults).
TenSEAL is imported only when keys are made or read (the ``he`` extra).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedra.core import ConfigError

#: A site's context file (secret key included), in its ``startup/`` folder.
SITE_CONTEXT_FILE = "he_context.tenseal"
#: The server's context file (public: no secret key), in its ``startup/`` folder.
SERVER_CONTEXT_FILE = "he_public_context.tenseal"

_DEGREES = (8192, 16384, 32768)


class HEKeyError(ConfigError):
    """HE key material is missing, unreadable, or the wrong kind for where it is used."""


def tenseal() -> Any:
    """The ``tenseal`` module, or a ConfigError saying how to install it."""
    try:
        import tenseal as ts
    except ImportError as exc:  # pragma: no cover - the he extra is installed in development
        raise ConfigError("homomorphic encryption needs TenSEAL: pip install 'fedra[he]'") from exc
    return ts


@dataclass(frozen=True)
class CKKSParams:
    """CKKS encryption parameters.

    The defaults (degree 8192, moduli 60-40-40-60 bits, scale 2^40) give 128-bit security
    (HomomorphicEncryption.org standard, checked by SEAL), 4096 values per ciphertext, about
    6 correct decimal digits after a weighted average, and one multiplication level to spare.
    """

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 40, 40, 60)
    scale_bits: int = 40

    def __post_init__(self) -> None:
        if self.poly_modulus_degree not in _DEGREES:
            raise ConfigError(
                f"poly_modulus_degree must be one of {_DEGREES}, got {self.poly_modulus_degree!r}"
            )
        bits = self.coeff_mod_bit_sizes
        if len(bits) < 3 or any(isinstance(b, bool) or not 20 <= b <= 60 for b in bits):
            raise ConfigError(
                "coeff_mod_bit_sizes must list at least 3 sizes of 20-60 bits "
                f"(one level for the weighted sum), got {bits!r}"
            )
        if not 20 <= self.scale_bits <= min(bits[1:-1]):
            raise ConfigError(
                f"scale_bits must be 20..{min(bits[1:-1])} (the middle moduli), "
                f"got {self.scale_bits!r}"
            )


@dataclass(frozen=True)
class HEKeys:
    """One CKKS context, serialized twice: with the secret key (sites), without (server)."""

    secret: bytes
    public: bytes

    @classmethod
    def generate(cls, params: CKKSParams | None = None) -> HEKeys:
        """A fresh context (new secret key) with ``params``."""
        params = params or CKKSParams()
        ts = tenseal()
        try:
            context = ts.context(
                ts.SCHEME_TYPE.CKKS,
                params.poly_modulus_degree,
                coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
            )
        except ValueError as exc:
            raise ConfigError(f"SEAL refused the CKKS parameters {params}: {exc}") from exc
        context.global_scale = float(2**params.scale_bits)
        return cls.from_context(context)

    @classmethod
    def from_secret(cls, secret: bytes) -> HEKeys:
        """Both serializations of the secret context ``secret`` (as written for a site)."""
        context = _parse(secret, "the secret HE context")
        if not context.is_private():
            raise HEKeyError("the HE context given as secret holds no secret key")
        return cls.from_context(context)

    @classmethod
    def from_context(cls, context: Any) -> HEKeys:
        """Serialize a private TenSEAL context for the sites and, made public, for the server."""
        secret = context.serialize(
            save_public_key=True,
            save_secret_key=True,
            save_galois_keys=False,
            save_relin_keys=False,
        )
        public_context = context.copy()
        public_context.make_context_public()
        public = public_context.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=False,
        )
        return cls(secret=bytes(secret), public=bytes(public))


class HEContext:
    """A loaded CKKS context with what Fedra checks against: privacy, slots, fingerprint.

    ``fingerprint`` is a hash of the context's parameters and public key. Every ciphertext
    Fedra writes carries it, so a model encrypted under another key is refused by name
    instead of decrypting to noise.
    """

    def __init__(self, context: Any, source: str = "") -> None:
        self.tenseal = context
        self.source = source
        self.is_private: bool = bool(context.is_private())
        public_part = context.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=False,
        )
        self.fingerprint = hashlib.sha256(public_part).hexdigest()[:32]
        parms = context.seal_context().data.first_context_data().parms()
        #: Values one ciphertext holds (half the polynomial degree).
        self.slots = int(parms.poly_modulus_degree()) // 2

    def __repr__(self) -> str:
        kind = "secret" if self.is_private else "public"
        return f"HEContext({kind}, {self.fingerprint[:12]}, {self.source!r})"


def _parse(data: bytes, what: str) -> Any:
    ts = tenseal()
    try:
        return ts.context_from(data)
    except (ValueError, RuntimeError) as exc:
        raise HEKeyError(f"{what} is not a TenSEAL context: {exc}") from exc


def load_context(path: Path, *, secret: bool) -> HEContext:
    """Read a context file; ``secret``: it must hold the secret key (a site's), else must not
    (the server's: a server that could decrypt would defeat the point)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise HEKeyError(
            f"{path}: no HE context here; make one with `fedra poc prepare --he` or "
            "`homomorphic_encryption: true` in project.yml"
        ) from exc
    except OSError as exc:
        raise HEKeyError(f"{path}: cannot read the HE context: {exc.strerror or exc}") from exc
    context = HEContext(_parse(data, str(path)), str(path))
    if secret and not context.is_private:
        raise HEKeyError(
            f"{path}: this HE context holds no secret key (is it the server's public context?); "
            "a site needs its own he_context.tenseal to decrypt"
        )
    if not secret and context.is_private:
        raise HEKeyError(
            f"{path}: this HE context holds the secret key; the server must only have the "
            "public context (he_public_context.tenseal): re-provision it"
        )
    return context


def context_path(startup_dir: Path | None, file_name: str, user: str) -> Path:
    """``startup_dir/file_name``; ``file_name`` must be a plain file name (confined to the
    participant's startup folder). ``user`` names who asks, for the error message."""
    check_file_name(file_name)
    if startup_dir is None:
        raise HEKeyError(
            f"{user}: no startup folder to read {file_name} from; run from a kit made with "
            "`fedra poc prepare --he` (or provisioned with homomorphic_encryption: true), or "
            "simulate with --kits <that folder> (kits= in Python)"
        )
    return Path(startup_dir) / file_name


def check_file_name(file_name: str) -> str:
    """``file_name`` if it is a plain file name (no folder, not '.' or '..'), else ValueError."""
    if (
        not isinstance(file_name, str)
        or not file_name
        or file_name in (".", "..")
        or "/" in file_name
        or "\\" in file_name
        or "\0" in file_name
    ):
        raise ValueError(
            f"context_file must be a file name in the startup folder, got {file_name!r}"
        )
    return file_name


def _write_file(path: Path, data: bytes, mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        raise HEKeyError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)


def write_site_context(startup: Path, keys: HEKeys) -> Path:
    """Write a site's secret context into its ``startup/`` folder (mode 0600)."""
    startup.mkdir(parents=True, exist_ok=True)
    path = startup / SITE_CONTEXT_FILE
    _write_file(path, keys.secret, 0o600)
    return path


def write_server_context(startup: Path, keys: HEKeys) -> Path:
    """Write the server's public context into its ``startup/`` folder (mode 0644)."""
    startup.mkdir(parents=True, exist_ok=True)
    path = startup / SERVER_CONTEXT_FILE
    _write_file(path, keys.public, 0o644)
    return path


def write_kits(
    root: Path, sites: Iterable[str], keys: HEKeys | None = None, server: str = "server"
) -> HEKeys:
    """Write ``root/<site>/startup/`` and ``root/<server>/startup/`` key files (POC layout:
    what ``simulate(..., kits=root)`` reads); returns the keys (fresh unless given)."""
    keys = keys or HEKeys.generate()
    for site in sites:
        write_site_context(Path(root) / site / "startup", keys)
    write_server_context(Path(root) / server / "startup", keys)
    return keys


def load_or_create_secret(path: Path, params: CKKSParams | None = None) -> HEKeys:
    """The project's keys from ``path`` (a secret context kept by the provisioner), made and
    written there (0600) on first use, so that kits provisioned later share the same key."""
    if path.exists():
        try:
            return HEKeys.from_secret(path.read_bytes())
        except OSError as exc:
            raise HEKeyError(f"cannot read {path}: {exc.strerror or exc}") from exc
    keys = HEKeys.generate(params)
    _write_file(path, keys.secret, 0o600)
    return keys
