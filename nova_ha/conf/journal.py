"""``[journal]``: the SQL journal (host states, fencing, recoveries, alarms,
maintenance drains). See doc/journal.md."""

from oslo_config import cfg
import sqlalchemy as sa

GROUP = cfg.OptGroup(
    'journal', title='Journal',
    help='The SQL journal where the evacuator and maintenance keep their '
         'state (SQLite by default; MariaDB/MySQL and PostgreSQL '
         'supported).')

DEFAULT_CONNECTION = 'sqlite:////var/lib/nova-ha/journal.sqlite'

OPTS = [
    cfg.StrOpt('connection', default=DEFAULT_CONNECTION, secret=True,
               help='SQLAlchemy URL of the journal database, e.g. '
                    'sqlite:////var/lib/nova-ha/journal.sqlite, '
                    'mysql+pymysql://USER:PASSWORD@HOST/nova_ha?charset='
                    'utf8mb4 or postgresql+psycopg2://USER:PASSWORD@HOST/'
                    'nova_ha. Every evacuator and the nova-ha CLI must '
                    'point at the same database.'),
    cfg.IntOpt('retention_days', default=90, min=1,
               help='Closed recoveries, finished fencing attempts and '
                    'drains, cleared alarms and host state history older '
                    'than this many days are deleted by "nova-ha journal '
                    'purge" (and by daemons that purge periodically).'),
    cfg.FloatOpt('sqlite_busy_timeout', default=30.0, min=0.1,
                 help='SQLite only: seconds a writer waits for another '
                      'process (evacuator, CLI) to release the database.'),
    cfg.FloatOpt('transaction_timeout', default=2.0, min=0,
                 help='MariaDB/MySQL and PostgreSQL only: seconds after '
                      'which the database server aborts a transaction left '
                      'idle (its session is cut) and a lock wait gives up. '
                      'It bounds how long a paused or hung evacuator can '
                      'hold the locks a standby needs to take over; keep it '
                      'well above the longest pause between two statements '
                      'of a healthy evacuator. 0 leaves the server '
                      'defaults.'),
    cfg.IntOpt('max_retries', default=8, min=0,
               help='Times a transaction is retried after a deadlock or '
                    'lock timeout.'),
    cfg.BoolOpt('auto_upgrade', default=False,
                help='Upgrade the journal schema when a daemon starts. '
                     'Off by default: run "nova-ha journal upgrade" once, '
                     'before starting the evacuators.'),
]

_BACKENDS = ('sqlite', 'mysql', 'mariadb', 'postgresql')


def validate_connection(value):
    """Parse ``[journal] connection``; a clear error without the password."""
    try:
        url = sa.engine.make_url(value)
    except Exception:
        raise cfg.Error('[journal] connection: not a database URL '
                        '(expected e.g. sqlite:////var/lib/nova-ha/'
                        'journal.sqlite)')
    if url.get_backend_name() not in _BACKENDS:
        raise cfg.Error(
            '[journal] connection: unsupported database %r in %s (supported: '
            '%s)' % (url.get_backend_name(),
                     url.render_as_string(hide_password=True),
                     ', '.join(_BACKENDS)))
    return url


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
