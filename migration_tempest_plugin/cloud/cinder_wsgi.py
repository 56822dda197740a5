"""cinder-api's WSGI application for gunicorn, in the lab cloud's venv.

``cinder.wsgi.api`` parses ``sys.argv[1:]`` with oslo.config when it is
imported, and reads no environment variable for its config folder (nova's,
glance's and keystone's WSGI modules do): under gunicorn, ``sys.argv`` is
gunicorn's own, and cinder would find no cinder.conf.  This module names
the file first, from ``OS_CINDER_CONFIG_DIR`` (as the other APIs are
pointed at theirs: ``cloud/apis.py`` ``api_env``), then loads cinder's.

gunicorn reads it as ``migration_tempest_plugin.cloud.cinder_wsgi:
application``, with this package on PYTHONPATH; it imports nothing of the
project.
"""

import os
import sys

CONF_DIR = os.environ.get('OS_CINDER_CONFIG_DIR', '/etc/cinder')
sys.argv[1:] = ['--config-file', os.path.join(CONF_DIR, 'cinder.conf')]

from cinder.wsgi.api import application  # noqa: E402,F401,H306
