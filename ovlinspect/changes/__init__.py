"""Changes since the image: what an overlay's upper layer adds, changes and deletes.

Read from the upper layer and its private xattrs, with a bounded lookup in the lowers per change
(never a walk of the lowers).  :func:`ovlinspect.changes.source.open_targets` opens the proven
layers of a namespace's overlays; :func:`ovlinspect.changes.walk.iter_changes` streams one
overlay's changes in path order (usable by a front end page by page).
"""
