"""Provenance of merged objects: which layer serves a path, an open fd or a watch.

Built on the engine: the overlay's layers and their proven real directories come from
:func:`ovlinspect.engine.analyse.analyse`; each object is then placed by looking its name up in
those layers (as overlayfs does: whiteouts, opaque directories, redirects, metacopy) and, where
that is safe, confirmed with the object's own overlay file handle.

- :mod:`.result`: the result records and their JSON form.
- :mod:`.session`: one overlay's layer directories, opened once.
- :mod:`.walk`: name lookup through the layers (the kernel's rules).
- :mod:`.classify`: one object: layer, real path, origin, data, proof.
- :mod:`.which`: paths as a process sees them.
- :mod:`.fds`: a process's open fds and inotify/fanotify watches.
- :mod:`.browse`: one merged directory at a time (for a lazy browser).

Nothing here writes: lookups use O_PATH, directories are read with O_NOATIME, and directory
handles are only encoded where the parent is the overlay's root (KERNEL-NOTES).
"""
