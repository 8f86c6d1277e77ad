"""The error the secure aggregation protocol raises."""

from __future__ import annotations

from fedra.core import WorkflowError


class SecAggError(WorkflowError):
    """A secure aggregation message is malformed, tampered with or out of turn, or too many
    sites dropped out for the round's secrets to be recovered.

    The message names the stage, the site and what was wrong; no secret is ever part of it.
    """
