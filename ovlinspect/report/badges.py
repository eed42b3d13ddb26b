"""Words and symbols for severities and verdicts, so colour is never the only signal."""

from __future__ import annotations

from ovlinspect.model import Severity, Status, Verified

SEVERITY_BADGE = {
    Severity.ERROR: "✖ error",
    Severity.WARNING: "▲ warn",
    Severity.INFO: "ℹ info",
}
OK_BADGE = "✔ ok"
SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
VERIFIED_BADGE = {
    Verified.MATCH: "✔ match",
    Verified.MISMATCH: "✖ mismatch",
    Verified.UNVERIFIED: "? unverified",
}
VERIFIED_STYLE = {Verified.MATCH: "green", Verified.MISMATCH: "bold red",
                  Verified.UNVERIFIED: "dim"}


def severity_badge(severity: Severity | None) -> str:
    """``✖ error`` / ``▲ warn`` / ``ℹ info``, or ``✔ ok`` when there is no hazard."""
    return OK_BADGE if severity is None else SEVERITY_BADGE[severity]


def severity_style(severity: Severity | None) -> str:
    """The Rich style that goes with :func:`severity_badge`."""
    return "green" if severity is None else SEVERITY_STYLE[severity]


STATUS_BADGE = {
    Status.ERROR: "✖ error",
    Status.WARNING: "▲ warn",
    Status.UNVERIFIED: "? unproven",
    Status.INFO: "ℹ info",
    Status.OK: "✔ ok",
}
STATUS_STYLE = {Status.ERROR: "bold red", Status.WARNING: "yellow", Status.UNVERIFIED: "magenta",
                Status.INFO: "cyan", Status.OK: "green"}


def worst_status(statuses: list[Status]) -> Status | None:
    """The most urgent of ``statuses`` (error first), or None when there are none."""
    return max(statuses, key=lambda s: s.rank, default=None)
