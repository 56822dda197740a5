import sys

from migration_tempest_plugin.cloud import cli

sys.exit(cli.main())
