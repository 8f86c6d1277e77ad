"""Fixed-point quantization of float updates to integers modulo ``2**modulus_bits``.

A value ``x`` is clipped to ``[-clip, clip]`` and rounded to the nearest multiple of
``step = clip / (2**(bits - 1) - 1)``; the integer ``q = round(x / step)`` (``|q| <
2**(bits - 1)``) travels as ``q mod 2**modulus_bits`` in an unsigned array (two's complement).
Sums of such integers are exact as long as they stay below ``2**(modulus_bits - 1)`` in
absolute value, which :meth:`Quantizer.check_capacity` makes sure of before a round starts.

Precision: a value inside the clipping range comes back within ``step / 2``; so does a
weighted average of such values. A value outside the range comes back as ``±clip``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedra.core import Array
from fedra.secagg.errors import SecAggError

MODULUS_BITS = (32, 64)
_UNSIGNED: dict[int, type[np.unsignedinteger]] = {32: np.uint32, 64: np.uint64}
_SIGNED: dict[int, type[np.signedinteger]] = {32: np.int32, 64: np.int64}


@dataclass(frozen=True)
class Quantizer:
    """Maps float vectors to integers mod ``2**modulus_bits`` and sums back to floats."""

    clip: float
    bits: int
    modulus_bits: int

    def __post_init__(self) -> None:
        if isinstance(self.clip, bool) or not isinstance(self.clip, int | float):
            raise SecAggError(f"clip must be a number, got {self.clip!r}")
        if not math.isfinite(self.clip) or self.clip <= 0:
            raise SecAggError(f"clip must be finite and > 0, got {self.clip!r}")
        if self.modulus_bits not in MODULUS_BITS:
            raise SecAggError(f"modulus_bits must be 32 or 64, got {self.modulus_bits!r}")
        if (
            isinstance(self.bits, bool)
            or not isinstance(self.bits, int)
            or not 2 <= self.bits < self.modulus_bits
        ):
            raise SecAggError(
                f"bits must be an integer in [2, {self.modulus_bits - 1}], got {self.bits!r}"
            )

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """The unsigned integer type masked vectors travel as."""
        return _UNSIGNED[self.modulus_bits]

    @property
    def levels(self) -> int:
        """The largest ``|q|`` a single value quantizes to."""
        return (1 << (self.bits - 1)) - 1

    @property
    def step(self) -> float:
        """The quantization step: values come back within ``step / 2``."""
        return self.clip / self.levels

    def check_capacity(self, sites: int, max_weight: int) -> None:
        """Refuse parameters whose sum over ``sites`` could wrap around the modulus."""
        largest = sites * max_weight * self.levels
        if largest > (1 << (self.modulus_bits - 1)) - 1:
            raise SecAggError(
                f"{sites} sites x weight {max_weight} x 2**{self.bits - 1} levels overflows "
                f"{self.modulus_bits}-bit sums: lower bits or max_weight, or use modulus_bits 64"
            )

    def quantize(self, vector: Array) -> Array:
        """The signed integers (int64) ``round(clip(x) / step)``; NaN and inf are refused."""
        values = np.asarray(vector, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise SecAggError("the update holds NaN or infinite values; they cannot be quantized")
        clipped = np.clip(values, -self.clip, self.clip)
        return np.rint(clipped / self.step).astype(np.int64)

    def encode(self, quantized: Array, weight: int = 1) -> Array:
        """``weight * quantized`` modulo ``2**modulus_bits`` as the unsigned dtype."""
        return (np.asarray(quantized, dtype=np.int64) * np.int64(weight)).astype(self.dtype)

    def signed(self, total: Array) -> Array:
        """An exact sum of encoded vectors back as signed integers (int64)."""
        return np.asarray(total, dtype=self.dtype).view(_SIGNED[self.modulus_bits]).astype(np.int64)

    def dequantize(self, total: Array, divisor: float = 1.0) -> Array:
        """Signed integer sums to floats: ``total * step / divisor`` (float64)."""
        return np.asarray(total, dtype=np.float64) * (self.step / divisor)
