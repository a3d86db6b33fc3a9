"""OpenStackClient plugin of nova-ha: ``openstack ha ...``.

Registered with the ``openstack.cli.extension`` entry point ``ha``; the
commands are the ``openstack.ha.v1`` entry points. nova-ha has no REST API
of its own: the commands read nova-ha's journal and drive maintenance
through the same code as the ``nova-ha`` command line, configured by
nova-ha.conf (``--ha-config-file``), so they need no Keystone
authentication of their own (``auth_required = False``); maintenance
reaches Nova with nova-ha.conf's ``[nova]`` credentials, as ``nova-ha
maintenance`` does.
"""

import logging
import os

LOG = logging.getLogger(__name__)

DEFAULT_API_VERSION = '1'
API_VERSION_OPTION = 'os_ha_api_version'
API_NAME = 'ha'
API_VERSIONS = {
    '1': 'nova_ha.osc.plugin.HAClient',
}

#: nova-ha.conf when neither --ha-config-file nor $NOVA_HA_CONFIG names one
DEFAULT_CONFIG_FILE = '/etc/nova-ha/nova-ha.conf'
CONFIG_ENV = 'NOVA_HA_CONFIG'


class HAClient:
    """What the ``openstack ha`` commands act through: nova-ha.conf loaded
    into oslo.config's global ``CONF`` (as ``nova-ha --config-file``
    does), then the journal and the maintenance engine of the nova-ha
    command line."""

    def __init__(self, api_version=DEFAULT_API_VERSION):
        self.api_version = api_version
        self.config_files = None

    @staticmethod
    def config_files_for(path):
        """The nova-ha.conf files to read for ``--ha-config-file PATH``
        (None: not given): PATH, else $NOVA_HA_CONFIG, else the default
        file if it exists (else none: option defaults). A file named
        explicitly must exist."""
        path = path or os.environ.get(CONFIG_ENV)
        if path:
            return [path]
        return [DEFAULT_CONFIG_FILE] if os.path.exists(
            DEFAULT_CONFIG_FILE) else []

    def configure(self, path=None):
        """Parse nova-ha.conf; raises oslo.config errors (a missing or
        malformed file)."""
        from nova_ha.cmd import cli
        files = self.config_files_for(path)
        cli.load_config(files)
        self.config_files = files
        LOG.debug('nova-ha configuration: %s', files or '(defaults)')

    def journal(self, args):
        """The journal of ``args.connection`` or ``[journal] connection``
        (schema checked)."""
        from nova_ha.journal import cli as journal_cli
        return journal_cli.open_journal(args)

    def maintenance_engine(self):
        from nova_ha.maintenance import cli as maint_cli
        return maint_cli.engine()


def make_client(instance):
    """Returns the nova-ha client (:class:`HAClient`)."""
    version = instance._api_version.get(API_NAME, DEFAULT_API_VERSION)
    if version not in API_VERSIONS:
        raise ValueError('nova-ha API version %r is not supported; '
                         'supported: %s' % (version,
                                            ', '.join(sorted(API_VERSIONS))))
    LOG.debug('Instantiating nova-ha client, API version %s', version)
    return HAClient(version)


def build_option_parser(parser):
    """Hook to add global options."""
    parser.add_argument(
        '--os-ha-api-version',
        metavar='<ha-api-version>',
        default=os.environ.get('OS_HA_API_VERSION'),
        help='nova-ha command set version, default=%s (Env: '
             'OS_HA_API_VERSION)' % DEFAULT_API_VERSION)
    return parser
