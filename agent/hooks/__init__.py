"""Hooks: the language (``lang``: HyperDbg's `!ioin` syntax to a HookSpec, with ``validate`` and
``render``), the table (``table``), the hook service (``service``).

Nothing is imported here: the controller imports ``lang`` alone, without the table's script
runtime and numpy.
"""
