"""The wire format: the only code in Fedra that knows bytes.

Every message is a frame: a versioned protobuf header listing each tensor by name, dtype
(little-endian numpy dtypes from :data:`ALLOWED_DTYPES`), shape, offset and size, with metrics,
meta and envelope headers as JSON text; then the tensors' raw bytes. Nothing executable and
no class names travel. Decoding is zero-copy and raises :class:`fedra.core.WireError` on
anything malformed.
"""

from fedra.wire.decode import (
    FrameHead,
    TensorHead,
    decode_envelope,
    decode_model,
    decode_split,
    peek_frame,
    peek_head,
)
from fedra.wire.encode import (
    MODEL_KIND,
    encode_envelope,
    encode_envelope_chunks,
    encode_model,
    encode_model_chunks,
    prepare_envelope,
    prepare_model,
)
from fedra.wire.envelope import Envelope
from fedra.wire.frame import (
    ALIGN,
    ALLOWED_DTYPES,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_FRAME,
    MAGIC,
    MAX_HEADER_SIZE,
    MAX_NAME_BYTES,
    MAX_NDIM,
    MAX_TENSORS,
    VERSION,
    EncodedFrame,
)

__all__ = [
    "ALIGN",
    "ALLOWED_DTYPES",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_FRAME",
    "MAGIC",
    "MAX_HEADER_SIZE",
    "MAX_NAME_BYTES",
    "MAX_NDIM",
    "MAX_TENSORS",
    "MODEL_KIND",
    "VERSION",
    "EncodedFrame",
    "Envelope",
    "FrameHead",
    "TensorHead",
    "decode_envelope",
    "decode_model",
    "decode_split",
    "encode_envelope",
    "encode_envelope_chunks",
    "encode_model",
    "encode_model_chunks",
    "peek_frame",
    "peek_head",
    "prepare_envelope",
    "prepare_model",
]
