"""Field types of the messages between Fedra's processes: bounded, validated on receipt.

Each is a type with :class:`msgspec.Meta` constraints; :func:`fedra.protocol.decode` checks
them when a message arrives, before any reader acts on it.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

#: Longest id, name, key or state accepted in a header (characters).
MAX_TEXT = 1024
#: Longest free text (an error, a detail, a traceback) accepted in a header (characters).
MAX_DETAIL = 1 << 20
#: Most items in a list of ids or names (the sites of a job, the jobs of a site).
MAX_ITEMS = 10_000

#: An id, a name, a key: at most MAX_TEXT characters.
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
#: Free text (an error, a detail, a traceback): at most MAX_DETAIL characters.
Detail = Annotated[str, Meta(max_length=MAX_DETAIL)]
#: A job id as the server makes them (a UUID): letters, digits, ``.``, ``_``, ``-``; no
#: leading dot; at most 128 characters. Safe as a folder name on every host.
JobId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
#: A list of names or ids.
Names = Annotated[tuple[Text, ...], Meta(max_length=MAX_ITEMS)]
#: A site's resources as in ``local/resources.json``: standard amounts, and ``extra`` ones.
Amounts = dict[Text, float | int | dict[Text, float | int]]
#: A metric value a workflow reports for a round.
Metric = float | int | str | None
