"""Proof-of-concept federations on one machine: prepare, start, stop."""

from fedra.poc.control import start, stop
from fedra.poc.prepare import PocLayout, prepare

__all__ = ["PocLayout", "prepare", "start", "stop"]
