"""Clients for a running simulated cloud, read from its state file."""

import json
import os
import urllib.error
import urllib.request

from nova_ha.sim import cloud as sim_cloud

DEFAULT_STATE_DIR = '.nova-ha-sim'
ENV_STATE_DIR = 'NOVA_HA_SIM_STATE_DIR'


class NotRunning(sim_cloud.SimError):
    pass


def default_state_dir():
    return os.environ.get(ENV_STATE_DIR, DEFAULT_STATE_DIR)


def load_state(state_dir=None):
    state_dir = state_dir or default_state_dir()
    path = os.path.join(state_dir, sim_cloud.STATE_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise NotRunning('no simulated cloud in %s (%s not found); start one '
                         'with: nova-ha-sim serve --state-dir %s'
                         % (state_dir, path, state_dir))


def keystone_session(state):
    """A keystoneauth1 session for the sim's Nova API (admin_token plugin)."""
    from keystoneauth1 import loading
    from keystoneauth1 import session
    auth = loading.get_plugin_loader('admin_token').load_from_options(
        endpoint=state['api']['endpoint'], token=state['api']['token'])
    return session.Session(auth=auth)


def nova_client(state, version='2.94'):
    """python-novaclient against the sim. 2.94 keeps evacuated servers in
    their power state (2.95+ leaves them stopped)."""
    from novaclient import client
    return client.Client(version, session=keystone_session(state))


def control(state, method, path, body=None, timeout=30):
    """Call the sim's control API; raise SimError with its message."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        state['control'] + path, data=data, method=method,
        headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            msg = json.load(exc)['error']
        except Exception:
            msg = 'HTTP %d from the simulated cloud' % exc.code
        raise sim_cloud.SimError(msg)
    except (urllib.error.URLError, ConnectionError) as exc:
        raise NotRunning('simulated cloud at %s does not answer (%s); is '
                         'nova-ha-sim serve still running?'
                         % (state['control'], getattr(exc, 'reason', exc)))
