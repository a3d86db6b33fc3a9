"""One way to reach the Nova API: keystoneauth1 session + python-novaclient.

Shared by the evacuator, maintenance and the CLI; configured by the
``[nova]`` group (nova_ha/conf/nova.py).
"""

from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from novaclient import client as nova_client_mod
from oslo_config import cfg
import requests

# 2.94 is the last microversion that keeps an evacuated server in its
# power state (2.95 leaves it SHUTOFF); an ACTIVE VNF member must come back
# ACTIVE. 2.53+ gives service ids and forced_down, 2.47+ embeds the flavor's
# extra specs in a server.
MICROVERSION = '2.94'


# Connections kept open per endpoint. The evacuator calls Nova up to
# [evacuator] max_concurrent_evacuations (20) at once: with requests'
# default 10, half of a burst's calls opened a connection and threw it
# away ("Connection pool is full"). The pool is at least POOL_SIZE, and
# holds a burst plus POOL_HEADROOM for the threads outside the burst
# (leader's pass, audit, capacity reads).
POOL_SIZE = 32
POOL_HEADROOM = 4


def pool_size(conf):
    try:
        burst = conf.evacuator.max_concurrent_evacuations
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return POOL_SIZE      # the CLI, maintenance: no burst of calls
    return max(POOL_SIZE, burst + POOL_HEADROOM)


class NovaConfigError(Exception):
    pass


def session_from_conf(conf=None):
    conf = conf or cfg.CONF
    auth = ks_loading.load_auth_from_conf_options(conf, 'nova')
    if auth is None:
        raise NovaConfigError('[nova] auth_type is not set: nova-ha needs '
                              'credentials for the Nova API')
    http = requests.Session()
    for scheme in ('https://', 'http://'):
        # keystoneauth's own adapter (TCP keep-alive), as it mounts on the
        # sessions it makes, with a pool for a burst.
        http.mount(scheme, ks_session.TCPKeepAliveAdapter(
            pool_maxsize=pool_size(conf)))
    return ks_loading.load_session_from_conf_options(conf, 'nova', auth=auth,
                                                     session=http)


def client(session=None, conf=None, version=MICROVERSION):
    conf = conf or cfg.CONF
    session = session or session_from_conf(conf)
    return nova_client_mod.Client(
        version, session=session, region_name=conf.nova.region_name,
        endpoint_type=conf.nova.endpoint_type,
        timeout=conf.nova.api_timeout)
