"""The runtime's errors: one line each, saying what failed."""

from migration_tempest_plugin import errors


class LabError(errors.Error):
    """Something in the lab failed; the message is one line and says what."""


class LabCommandError(LabError):
    def __init__(self, argv, returncode, stdout, stderr, where='host'):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = one_line(stderr or stdout or '')
        super().__init__('%s: `%s` exited %s%s' % (
            where, ' '.join(self.argv), returncode,
            ': ' + tail if tail else ''))


def one_line(text, limit=400):
    text = ' | '.join(line.strip() for line in text.strip().splitlines()
                      if line.strip())
    return text if len(text) <= limit else '...' + text[-limit:]
