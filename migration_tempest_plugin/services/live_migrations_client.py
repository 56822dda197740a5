"""What tempest's compute clients lack, or get wrong, for in-progress live
migrations.

- abort: tempest.lib has no DELETE /servers/{id}/migrations/{id} (2.24);
- force-complete: tempest.lib's servers_client sends the string 'null'
  ({"force_complete": "null"}), which nova's schema refuses with 400
  ("'null' is not of type 'null'"); nova wants a JSON null (2.22).
"""

import json

from tempest.lib.common import rest_client
from tempest.lib.services.compute import base_compute_client


class LiveMigrationsClient(base_compute_client.BaseComputeClient):

    def abort_live_migration(self, server_id, migration_id):
        """Abort an in-progress live migration (202, empty body)."""
        resp, body = self.delete('servers/%s/migrations/%s' % (
            server_id, migration_id))
        self.expected_success(202, resp.status)
        return rest_client.ResponseBody(resp, body)

    def force_complete_live_migration(self, server_id, migration_id):
        """Ask nova to complete a running live migration now: it pauses the
        guest, or switches to post-copy when that is permitted (202)."""
        resp, body = self.post(
            'servers/%s/migrations/%s/action' % (server_id, migration_id),
            json.dumps({'force_complete': None}))
        self.expected_success(202, resp.status)
        return rest_client.ResponseBody(resp, body)
