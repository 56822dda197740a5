"""MariaDB for the lab cloud: on a Unix socket only, under the cloud's
folder, started by the cloud's supervisor (never as a system service)."""

import os

from migration_tempest_plugin.cloud import config as cfg
from migration_tempest_plugin import runtime as rt


def argv(s):
    """mariadbd on a Unix socket only: nothing in the nodes needs the
    database (nova-compute goes through the conductor)."""
    d = s.path('mysql')
    return ['mariadbd', '--no-defaults', '--user=root',
            '--datadir=' + os.path.join(d, 'data'),
            '--socket=' + s.mysql_socket,
            '--pid-file=' + os.path.join(d, 'mysqld.pid'),
            '--skip-networking', '--skip-name-resolve',
            '--performance-schema=OFF',
            '--innodb-buffer-pool-size=64M',
            '--innodb-log-file-size=48M',
            '--innodb-flush-log-at-trx-commit=2',
            '--max-connections=500',
            '--character-set-server=utf8mb4',
            '--collation-server=utf8mb4_general_ci']


def install_argv(s):
    return ['mariadb-install-db', '--no-defaults', '--user=root',
            '--datadir=' + os.path.join(s.path('mysql'), 'data'),
            '--auth-root-authentication-method=socket', '--skip-test-db']


def _sql_quote(text):
    return "'%s'" % text.replace('\\', '\\\\').replace("'", "\\'")


def setup_sql(s):
    """Databases and the one user the services connect as."""
    stmts = ['CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4;' % db
             for db in cfg.DATABASES]
    stmts.append("CREATE USER IF NOT EXISTS '%s'@'localhost' IDENTIFIED BY %s;"
                 % (cfg.DB_USER, _sql_quote(s.secrets['db'])))
    stmts.append("ALTER USER '%s'@'localhost' IDENTIFIED BY %s;"
                 % (cfg.DB_USER, _sql_quote(s.secrets['db'])))
    stmts += ["GRANT ALL PRIVILEGES ON %s.* TO '%s'@'localhost';"
              % (db, cfg.DB_USER) for db in cfg.DATABASES]
    stmts.append('FLUSH PRIVILEGES;')
    return '\n'.join(stmts) + '\n'


SERVICES = ('mariadb',)


def install(cloud, s):
    """The data folder, made once (an empty one forgets every schema)."""
    data = cloud.path('mysql', 'data')
    if not os.path.isdir(os.path.join(data, 'mysql')):
        cloud.save_meta(synced=None)
        os.makedirs(data, exist_ok=True)
        cloud.run(install_argv(s), 'mariadb-install-db')


def start(cloud, s):
    cloud.sup.start('mariadb', argv(s))


def _client(s):
    return ['mariadb', '--no-defaults', '--socket=' + s.mysql_socket,
            '-uroot']


def wait(cloud, s):
    def ready():
        try:
            return rt.host_run(_client(s) + ['-e', 'SELECT 1'], check=False,
                               env=cloud.env(), timeout=10).returncode == 0
        except rt.LabError:     # a timeout: not ready yet
            return False
    cloud.sup.wait('mariadb', 'answered on %s' % s.mysql_socket, ready, 60)


def init(cloud, s):
    """The services' databases and their user."""
    cloud.run(_client(s), 'creating the databases', input=setup_sql(s))


def stop(cloud):
    return cloud.stop_services(SERVICES)
