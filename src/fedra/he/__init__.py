"""Homomorphic encryption (CKKS, through TenSEAL): keys, and encrypted params in an FLModel.

Sites hold the secret context, the server only the public one: the server adds the sites'
encrypted models and scales them by their weights without being able to read them
(see docs/privacy.md). TenSEAL (the ``he`` extra) is imported only when it is used.
"""

from fedra.he.codec import (
    CIPHERTEXT,
    DTYPES,
    LAYOUT,
    LAYOUT_VERSION,
    Layout,
    check_key,
    chunks_of,
    decrypt_params,
    encrypt_params,
    is_encrypted,
    layout_of,
    load_vector,
    pack,
)
from fedra.he.keys import (
    SERVER_CONTEXT_FILE,
    SITE_CONTEXT_FILE,
    CKKSParams,
    HEContext,
    HEKeyError,
    HEKeys,
    check_file_name,
    context_path,
    load_context,
    load_or_create_secret,
    tenseal,
    write_kits,
    write_server_context,
    write_site_context,
)

__all__ = [
    "CIPHERTEXT",
    "DTYPES",
    "LAYOUT",
    "LAYOUT_VERSION",
    "SERVER_CONTEXT_FILE",
    "SITE_CONTEXT_FILE",
    "CKKSParams",
    "HEContext",
    "HEKeyError",
    "HEKeys",
    "Layout",
    "check_file_name",
    "check_key",
    "chunks_of",
    "context_path",
    "decrypt_params",
    "encrypt_params",
    "is_encrypted",
    "layout_of",
    "load_context",
    "load_or_create_secret",
    "load_vector",
    "pack",
    "tenseal",
    "write_kits",
    "write_server_context",
    "write_site_context",
]
