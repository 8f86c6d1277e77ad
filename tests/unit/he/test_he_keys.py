"""CKKS key material: who gets which context, file modes, and clear errors for wrong keys."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fedra.core import ConfigError
from fedra.he import (
    SERVER_CONTEXT_FILE,
    SITE_CONTEXT_FILE,
    CKKSParams,
    HEKeyError,
    HEKeys,
    context_path,
    load_context,
    load_or_create_secret,
    tenseal,
    write_kits,
)

pytest.importorskip("tenseal")  # the he extra


@pytest.fixture(scope="module")
def keys() -> HEKeys:
    return HEKeys.generate()


def test_site_gets_the_secret_context_server_the_public_one(keys: HEKeys, tmp_path: Path) -> None:
    write_kits(tmp_path, ["site-1", "site-2"], keys)
    server_file = tmp_path / "server" / "startup" / SERVER_CONTEXT_FILE
    site_file = tmp_path / "site-1" / "startup" / SITE_CONTEXT_FILE
    # Read with TenSEAL directly, not through Fedra's loader: an independent check.
    ts = tenseal()
    server_raw = ts.context_from(server_file.read_bytes())
    site_raw = ts.context_from(site_file.read_bytes())
    assert not server_raw.is_private()
    assert not server_raw.has_secret_key()
    assert site_raw.is_private()
    assert list((tmp_path / "server" / "startup").iterdir()) == [server_file]
    assert stat.S_IMODE(site_file.stat().st_mode) == 0o600
    # One context: the server's key fingerprint is the sites'.
    server = load_context(server_file, secret=False)
    site = load_context(site_file, secret=True)
    assert server.fingerprint == site.fingerprint
    assert not server.is_private and site.is_private
    assert site.slots == 4096


def test_each_side_refuses_the_other_sides_file(keys: HEKeys, tmp_path: Path) -> None:
    write_kits(tmp_path, ["site-1"], keys)
    with pytest.raises(HEKeyError, match="holds the secret key; the server must only"):
        load_context(tmp_path / "site-1" / "startup" / SITE_CONTEXT_FILE, secret=False)
    with pytest.raises(HEKeyError, match="holds no secret key"):
        load_context(tmp_path / "server" / "startup" / SERVER_CONTEXT_FILE, secret=True)


def test_missing_or_garbage_context_files(tmp_path: Path) -> None:
    with pytest.raises(HEKeyError, match=r"no HE context here.*poc prepare --he"):
        load_context(tmp_path / SITE_CONTEXT_FILE, secret=True)
    garbage = tmp_path / "garbage.tenseal"
    garbage.write_bytes(b"not a context")
    with pytest.raises(HEKeyError, match="not a TenSEAL context"):
        load_context(garbage, secret=True)
    assert issubclass(HEKeyError, ConfigError)


@pytest.mark.parametrize("name", ["../he_context.tenseal", "/etc/passwd", "a/b", "", ".."])
def test_context_file_is_confined_to_the_startup_folder(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file name in the startup folder"):
        context_path(tmp_path, name, "test")


def test_no_startup_folder_names_the_fix() -> None:
    with pytest.raises(HEKeyError, match=r"site-1: no startup folder.*--kits"):
        context_path(None, SITE_CONTEXT_FILE, "site-1")


def test_project_key_is_made_once_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "he_context.tenseal"
    first = load_or_create_secret(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    again = load_or_create_secret(state)
    assert again.secret == first.secret
    assert again.public == first.public
    assert HEKeys.generate().public != first.public  # a fresh context is another key


def test_ckks_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="poly_modulus_degree"):
        CKKSParams(poly_modulus_degree=4096)
    with pytest.raises(ConfigError, match="coeff_mod_bit_sizes"):
        CKKSParams(coeff_mod_bit_sizes=(60, 60))
    with pytest.raises(ConfigError, match="scale_bits"):
        CKKSParams(scale_bits=50)
    # SEAL's own security check: 8192 allows 218 bits of moduli in total.
    with pytest.raises(ConfigError, match="SEAL refused"):
        HEKeys.generate(CKKSParams(coeff_mod_bit_sizes=(60, 50, 50, 50, 60)))
    bigger = HEKeys.generate(CKKSParams(poly_modulus_degree=16384))
    assert len(bigger.public) > 0
