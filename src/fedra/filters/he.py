"""HEEncrypt and HEDecrypt: a site's params leave it CKKS-encrypted and come back encrypted.

``HEEncrypt`` (``task_result_filters``) turns every param of an outgoing model into the two
arrays of an encrypted model (see :mod:`fedra.he`); ``HEDecrypt`` (``task_data_filters``)
turns an incoming encrypted model back into plain arrays and lets plain models (the initial
model the server chose) through unchanged. Both read the site's secret context from its
startup folder (``FilterContext.startup_dir``), by the file name ``context_file``, once per
filter instance. Metrics and meta (``num_samples``) are not encrypted.
"""

from __future__ import annotations

from pathlib import Path

from fedra.core import FedraError, FLModel
from fedra.filters._util import replace_params
from fedra.filters.base import TASK_DATA, TASK_RESULT, Direction, FilterContext, FilterError
from fedra.he import (
    SITE_CONTEXT_FILE,
    HEContext,
    check_file_name,
    context_path,
    decrypt_params,
    encrypt_params,
    is_encrypted,
    load_context,
)


class _SiteKey:
    """Loads (once per startup folder) the site's secret context named ``context_file``."""

    direction: Direction

    def __init__(self, context_file: str = SITE_CONTEXT_FILE) -> None:
        self.context_file = check_file_name(context_file)
        self._contexts: dict[Path, HEContext] = {}

    def _context(self, ctx: FilterContext) -> HEContext:
        who = f"{type(self).__name__} on {ctx.site}"
        if ctx.direction != self.direction:
            raise FilterError(
                f"{who}: belongs in the {self.direction}_filters, not {ctx.direction}_filters"
            )
        path = context_path(ctx.startup_dir, self.context_file, who)
        context = self._contexts.get(path)
        if context is None:
            context = load_context(path, secret=True)
            self._contexts[path] = context
        return context

    def __repr__(self) -> str:
        return f"{type(self).__name__}(context_file={self.context_file!r})"


class HEEncrypt(_SiteKey):
    """Encrypts every param of what a site sends (all numeric dtypes; shapes and dtypes are
    restored by HEDecrypt). Put it last among the task result filters."""

    direction: Direction = TASK_RESULT

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """The model with its params encrypted (models without params pass unchanged)."""
        if model.params is None:
            return model
        if is_encrypted(model.params):
            raise FilterError(f"HEEncrypt on {ctx.site}: the model is already encrypted")
        context = self._context(ctx)
        try:
            params = encrypt_params(model.params, context)
        except ValueError as exc:
            raise FilterError(f"HEEncrypt on {ctx.site}: {exc}") from exc
        return replace_params(model, params)


class HEDecrypt(_SiteKey):
    """Decrypts an encrypted model a site receives; a plain model passes unchanged. Put it
    first among the task data filters."""

    direction: Direction = TASK_DATA

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """The model with its params decrypted."""
        if not is_encrypted(model.params):
            return model
        assert model.params is not None
        context = self._context(ctx)
        try:
            params = decrypt_params(model.params, context, f"HEDecrypt on {ctx.site}")
        except FedraError as exc:
            raise FilterError(str(exc)) from exc
        return replace_params(model, params)
