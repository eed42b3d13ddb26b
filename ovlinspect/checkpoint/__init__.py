"""Checkpoint/restore of overlay mounts: dump what rebuilds each overlay, restore it, verify it.

``model`` (the dump and its JSON), ``locate`` (finding a layer directory again by handle),
``dump`` (the dump from the engine's evidence), ``recipe`` (new-mount-API steps and their
replay), ``restore`` (replay + verification by handle), ``compare`` and ``verify`` (``dump
--verify``: a throwaway rebuild compared with the live merged tree).
"""
