"""What the lab cloud's modules share: its error, and small probes and
file helpers."""

import datetime
import socket
import urllib.error
import urllib.request

from migration_tempest_plugin import errors


class CloudError(errors.Error):
    """`cloud` failed: one message that says what and where."""


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).replace(
        tzinfo=None).isoformat(timespec='seconds')


def http_answers(url, timeout=3):
    """True when something speaks HTTP at `url` (any status below 500)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


def address_is_local(address):
    """True when `address` belongs to this machine (the lab bridge is up):
    checked by binding to it, so that no probe ever leaves the machine."""
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def tcp_answers(host, port, timeout=2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
