"""One way to reach the Nova API: keystoneauth1 session + python-novaclient.

Shared by the evacuator, maintenance and the CLI; configured by the
``[nova]`` group (nova_ha/conf/nova.py).
"""

from keystoneauth1 import loading as ks_loading
from novaclient import client as nova_client_mod
from oslo_config import cfg

# 2.94 is the last microversion that keeps an evacuated server in its
# power state (2.95 leaves it SHUTOFF); an ACTIVE VNF member must come back
# ACTIVE. 2.53+ gives service ids and forced_down, 2.47+ embeds the flavor's
# extra specs in a server.
MICROVERSION = '2.94'


class NovaConfigError(Exception):
    pass


def session_from_conf(conf=None):
    conf = conf or cfg.CONF
    auth = ks_loading.load_auth_from_conf_options(conf, 'nova')
    if auth is None:
        raise NovaConfigError('[nova] auth_type is not set: nova-ha needs '
                              'credentials for the Nova API')
    return ks_loading.load_session_from_conf_options(conf, 'nova', auth=auth)


def client(session=None, conf=None, version=MICROVERSION):
    conf = conf or cfg.CONF
    session = session or session_from_conf(conf)
    return nova_client_mod.Client(
        version, session=session, region_name=conf.nova.region_name,
        endpoint_type=conf.nova.endpoint_type,
        timeout=conf.nova.api_timeout)
