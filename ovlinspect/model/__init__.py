"""The typed model every output renders (never imports textual or anything above it)."""

from ovlinspect.model.types import *  # noqa: F403
from ovlinspect.model.types import __all__ as _types_all

__all__ = list(_types_all)
