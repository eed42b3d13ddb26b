"""Thin ctypes wrappers: syscalls, the new mount API, the overlay handle codec, xattrs."""
