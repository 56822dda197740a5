from migration_tempest_plugin.services.live_migrations_client import \
    LiveMigrationsClient

__all__ = ['LiveMigrationsClient']
