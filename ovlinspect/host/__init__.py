"""Processes and namespaces: enumeration, views inside a root, filesystems by uuid."""
