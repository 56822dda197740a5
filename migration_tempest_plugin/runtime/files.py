"""Small state files, written whole or not at all."""

import json

from migration_tempest_plugin import common


def write_file(path, text, mode=0o644):
    """Write `text` to `path` whole or not at all (a reader never sees half
    a file), creating its folder."""
    common.atomic_write(path, text, mode)


def read_json(path):
    """The JSON object in `path`, or {} when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def update_json(path, mode=0o644, **changes):
    """Merge `changes` into the JSON object in `path`; return the result."""
    document = read_json(path)
    document.update(changes)
    write_file(path, json.dumps(document, indent=1, sort_keys=True) + '\n',
               mode)
    return document
