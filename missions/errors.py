"""Errors that come from what the user gave us, as opposed to bugs.

Anything raised as a :class:`UserError` is reported by the CLI as one line with exit
status 2; its message must name the file and the feature it is about.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a broken file, an impossible request, a plan that cannot be made safe."""


def where(source: str, feature: str | None = None) -> str:
    """The 'file: feature' prefix every message about input starts with."""
    return f"{source}: {feature}" if feature else source


class InputError(UserError):
    """A problem in one input file, optionally in one named feature of it."""

    def __init__(self, source: str, message: str, feature: str | None = None) -> None:
        self.source = source
        self.feature = feature
        self.detail = message
        super().__init__(f"{where(source, feature)}: {message}")


class RequestError(InputError):
    """A value of a planning request that cannot be flown, said in the domain's words.

    ``parameter`` is the request field (``drones``, ``altitude_m``) and ``complaint`` what is
    wrong with it, so that a front end can name the value its own way (a CLI flag, a form
    field) without reading it back out of the message.
    """

    def __init__(self, source: str, parameter: str, subject: str, complaint: str) -> None:
        self.parameter = parameter
        self.complaint = complaint
        super().__init__(source, f"{subject} {complaint}")


class PlanningError(UserError):
    """The request is well formed but no safe plan satisfies it."""
