import json
from unittest import mock

from tempest.lib import exceptions as lib_exc
from tempest.lib.services.compute import base_compute_client
import testtools

from migration_tempest_plugin.services import live_migrations_client


class _Resp(dict):
    def __init__(self, status):
        super().__init__()
        self.status = status


class TestLiveMigrationsClient(testtools.TestCase):
    """The request bodies, as nova's migrate_server schemas want them."""

    def setUp(self):
        super().setUp()
        self.client = live_migrations_client.LiveMigrationsClient(
            mock.Mock(), 'compute', 'RegionOne')

    def test_force_complete_sends_a_json_null(self):
        with mock.patch.object(base_compute_client.BaseComputeClient, 'post',
                               return_value=(_Resp(202), b'')) as post:
            self.client.force_complete_live_migration('srv', 7)
        url, body = post.call_args[0]
        self.assertEqual('servers/srv/migrations/7/action', url)
        # nova: {'force_complete': {'type': 'null'}}, required; tempest's own
        # client sends the string 'null', which nova answers with 400.
        self.assertEqual({'force_complete': None}, json.loads(body))

    def test_abort_is_a_delete_of_the_migration(self):
        with mock.patch.object(base_compute_client.BaseComputeClient,
                               'delete',
                               return_value=(_Resp(202), b'')) as delete:
            self.client.abort_live_migration('srv', 7)
        delete.assert_called_once_with('servers/srv/migrations/7')

    def test_abort_insists_on_202(self):
        with mock.patch.object(base_compute_client.BaseComputeClient,
                               'delete', return_value=(_Resp(200), b'')):
            self.assertRaises(lib_exc.InvalidHttpSuccessCode,
                              self.client.abort_live_migration,
                              'srv', 7)
