"""The script hop: messages between a site job's ScriptExecutor and its training script.

A script started with ``launch="subprocess"`` connects to its executor over a Unix socket.
The executor greets it (:class:`ScriptHello`), hands it tasks (:class:`ScriptTask`) and
finally :class:`ScriptStop`; the script answers each task (:class:`ScriptResult`), streams
metrics (:class:`ScriptLog`) and, when it fails, sends its traceback (:class:`ScriptError`).
These kinds are the script hop's own: :func:`decode_script` knows no runtime message, and
:func:`fedra.protocol.decode` no script-hop one.
"""

from __future__ import annotations

from typing import ClassVar, TypeAlias

import msgspec

from fedra.core import FLModel
from fedra.protocol.fields import Detail, Text
from fedra.protocol.messages import BadMessage
from fedra.wire import Envelope


class _ScriptMessage(msgspec.Struct, frozen=True):
    KIND: ClassVar[str]


# -- executor -> script --------------------------------------------------------------------
class ScriptHello(_ScriptMessage, frozen=True):
    """Who the script runs as: the executor's first message."""

    KIND: ClassVar[str] = "script.hello"
    site_name: Text
    site_index: int
    num_sites: int
    job_id: Text = ""
    params_format: Text = "numpy"


class ScriptTask(_ScriptMessage, frozen=True):
    """A task for the script (its data beside it)."""

    KIND: ClassVar[str] = "script.task"
    name: Text


class ScriptStop(_ScriptMessage, frozen=True):
    """The job is over: the script's ``receive()`` returns None."""

    KIND: ClassVar[str] = "script.stop"


# -- script -> executor --------------------------------------------------------------------
class ScriptResult(_ScriptMessage, frozen=True):
    """The answer to the current task (the model beside it)."""

    KIND: ClassVar[str] = "script.result"


class ScriptLog(_ScriptMessage, frozen=True):
    """One metric value the script reported."""

    KIND: ClassVar[str] = "script.log"
    key: Text
    value: float
    step: int | None = None


class ScriptError(_ScriptMessage, frozen=True):
    """The script failed: its traceback, sent before it exits."""

    KIND: ClassVar[str] = "script.error"
    detail: Detail = ""


ScriptMessage: TypeAlias = (
    ScriptHello | ScriptTask | ScriptStop | ScriptResult | ScriptLog | ScriptError
)

#: Every script-hop kind, and its struct.
SCRIPT_KINDS: dict[str, type[ScriptMessage]] = {
    cls.KIND: cls
    for cls in (ScriptHello, ScriptTask, ScriptStop, ScriptResult, ScriptLog, ScriptError)
}
#: What the executor sends the script, and what the script sends back.
TO_SCRIPT: frozenset[type[ScriptMessage]] = frozenset({ScriptHello, ScriptTask, ScriptStop})
FROM_SCRIPT: frozenset[type[ScriptMessage]] = frozenset({ScriptResult, ScriptLog, ScriptError})


def encode_script(message: ScriptMessage, model: FLModel | None = None) -> Envelope:
    """The envelope that carries a script-hop ``message`` (and ``model`` beside it)."""
    return Envelope(message.KIND, msgspec.to_builtins(message), model)


def decode_script(envelope: Envelope, accepted: frozenset[type[ScriptMessage]]) -> ScriptMessage:
    """The script-hop message an envelope carries; BadMessage for a kind not ``accepted``
    or headers that do not fit it."""
    cls = SCRIPT_KINDS.get(envelope.kind)
    if cls is None or cls not in accepted:
        raise BadMessage(f"a {envelope.kind[:40]!r} message is not expected here")
    try:
        return msgspec.convert(envelope.headers, type=cls)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"{envelope.kind}: {exc}") from None
