"""[nova]: how nova-ha's daemons and CLI reach the Nova API.

Standard keystoneauth1 options (auth_type, auth_url, username, password,
project_name, ..., plus session options cafile/insecure/timeout), exactly as
nova.conf's own service-client sections. Against the simulated cloud::

    [nova]
    auth_type = admin_token
    endpoint = http://127.0.0.1:PORT/v2.1
    token = TOKEN
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

GROUP = cfg.OptGroup('nova', title='Nova API client',
                     help='Credentials nova-ha uses to call the Nova API '
                          '(admin rights: force-down, evacuate, migrate).')

OPTS = [
    cfg.StrOpt('region_name', help='Region of the compute endpoint.'),
    cfg.StrOpt('endpoint_type', default='public',
               choices=['public', 'internal', 'admin'],
               help='Interface of the compute endpoint in the catalog.'),
    cfg.FloatOpt('api_timeout', default=30.0, min=1.0,
                 help='Seconds one Nova API request may take.'),
]


def register_opts(conf):
    # A new OptGroup for each ConfigOpts: oslo.config keeps a group's
    # options in the OptGroup object (shallow-copied on registration), and
    # keystoneauth registers the chosen auth plugin's options (auth_url:
    # required) on it when the client is built -- with the module-level
    # object, every ConfigOpts made later in the process would demand them.
    conf.register_group(cfg.OptGroup(GROUP.name, title=GROUP.title,
                                     help=GROUP.help))
    conf.register_opts(OPTS, group=GROUP.name)
    ks_loading.register_session_conf_options(conf, GROUP.name)
    ks_loading.register_auth_conf_options(conf, GROUP.name)


def list_opts():
    return [(GROUP, OPTS
             + ks_loading.get_session_conf_options()
             + ks_loading.get_auth_common_conf_options()
             + ks_loading.get_auth_plugin_conf_options('password'))]
