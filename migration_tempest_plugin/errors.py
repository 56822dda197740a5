"""The project's one exception root.

Every error the project raises on purpose derives from :class:`Error`, and
its message is one line that says what failed; the CLIs print it and exit
non-zero, and anything else is a bug that keeps its traceback.
"""


class Error(Exception):
    """A failure the project detected and explained in one line."""
