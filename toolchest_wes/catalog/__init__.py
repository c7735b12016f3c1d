"""The workflow catalog: named, vetted tools the server lists over TRS and runs by name.

Domain only: no web framework, no store. ``manifest`` reads one entry, ``catalog`` a folder
of them; ``starter/`` is the catalog shipped with the package.
"""
