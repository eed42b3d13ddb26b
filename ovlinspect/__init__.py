"""ovlinspect: show what an overlayfs mount is really made of."""

__version__ = "0.1.0"
