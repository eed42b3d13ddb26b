"""Changes since the image: what an overlay's upper layer adds, changes and deletes.

Read from the upper layer and its private xattrs, with a bounded lookup in the lowers per change:
the lowers are listed only below a directory the upper replaced or moved into a bound mount, and
walked only with ``index=on`` when an index entry serves lower hard links the upper does not
name (:mod:`ovlinspect.changes.index`).  :func:`ovlinspect.changes.source.open_targets` opens
the proven layers of a namespace's overlays; :func:`ovlinspect.changes.walk.iter_changes`
streams one overlay's changes in path order (usable by a front end page by page).
"""
