"""Real fencing back ends on 127.0.0.1 for the fencing tests.

* virtual IPMI BMCs (nova_ha.sim.vbmc), one per test that needs one;
* sushy-tools Redfish emulators (fake driver), one per module and mode:
  no power delay (speed), the emulator's own random 1-11 s delay (slow BMC),
  a fixed 3 s delay, TLS with a self-signed certificate;
* one standalone Ironic per test session (per xdist worker).
"""

import shutil
import socket

import pytest
import yaml

from nova_ha.fencing import fencer as fencer_mod
from nova_ha.fencing import inventory
from nova_ha.fencing import testing
from nova_ha.sim.vbmc import VBMCProcess

USER = 'admin'
# Distinctive, so that a leak is easy to find in any output.
PASSWORD = 'Fence-Pa55-Zq81xK'


def needs_ipmitool():
    if not shutil.which('ipmitool'):
        pytest.skip('ipmitool is not installed (apt-get install ipmitool, '
                    'or make system-deps); the ipmi driver runs it')


@pytest.fixture
def vbmc():
    """Factory: vbmc(**VBMCProcess kwargs) -> started VBMCProcess."""
    needs_ipmitool()
    started = []

    def start(password=PASSWORD, **kwargs):
        last = None
        for _ in range(5):      # a free UDP port can be taken in between
            port = testing.free_port(socket.SOCK_DGRAM)
            try:
                b = VBMCProcess(port, USER, password, **kwargs).start()
            except RuntimeError as exc:
                last = exc
                continue
            started.append(b)
            return b
        raise last

    yield start
    for b in started:
        b.stop()


def ipmi_entry(bmc, password=PASSWORD, **extra):
    e = {'driver': 'ipmi', 'address': '127.0.0.1', 'port': bmc.port,
         'username': USER, 'password': password}
    e.update(extra)
    return e


def make_fencer(hosts, ironic=None, **params):
    data = {'hosts': hosts}
    if ironic:
        data['ironic'] = ironic
    inv = inventory.parse(data)
    # Generous command_timeout: a loaded 2-core CI box can take seconds to
    # answer even on loopback. Tests about timeouts set their own.
    p = dict(command_timeout=5.0, power_off_timeout=5.0, fence_timeout=20.0,
             poll_interval=0.05, retries=2, retry_backoff=0.1,
             retry_backoff_max=0.5)
    p.update(params)
    return fencer_mod.Fencer(inv, fencer_mod.FenceParams(**p))


def write_inventory(path, hosts, ironic=None):
    data = {'hosts': hosts}
    if ironic:
        data['ironic'] = ironic
    path.write_text(yaml.safe_dump(data))
    return str(path)


class Systems:
    """A sushy emulator and the fake systems it serves."""

    def __init__(self, emu, ids):
        self.emu = emu
        self.ids = ids
        self._next = 0

    def take(self):
        """A system id no other test of the module uses."""
        sid = self.ids[self._next]
        self._next += 1
        return sid

    def entry(self, system_id, password=PASSWORD, **extra):
        e = {'driver': 'redfish', 'address': self.emu.url,
             'username': USER, 'password': password,
             'system_id': system_id, 'verify_tls': False}
        e.update(extra)
        return e


def _emulator(n, **kwargs):
    ids = [testing.new_uuid() for _ in range(n)]
    emu = testing.SushyEmulator([(i, 'system-%d' % k, 'On')
                                 for k, i in enumerate(ids)],
                                username=USER, password=PASSWORD, **kwargs)
    emu.start()
    return emu, Systems(emu, ids)


@pytest.fixture(scope='module')
def sushy_fast():
    """Emulator whose power changes apply at once (http, basic auth)."""
    emu, systems = _emulator(40, power_delay=0)
    yield systems
    emu.stop()


@pytest.fixture(scope='module')
def sushy_random_delay():
    """The emulator as shipped: power changes apply after 1-11 s."""
    emu, systems = _emulator(2, power_delay='random')
    yield systems
    emu.stop()


@pytest.fixture(scope='module')
def sushy_fixed_delay():
    """Power changes apply after 2-3 s (fixed 3 s, whole-second clock)."""
    emu, systems = _emulator(2, power_delay=3)
    yield systems
    emu.stop()


@pytest.fixture(scope='module')
def sushy_tls():
    """HTTPS with a self-signed certificate, a single system."""
    emu, systems = _emulator(1, power_delay=0, tls=True)
    yield systems
    emu.stop()


@pytest.fixture(scope='session')
def ironic_service():
    why = testing.IronicStandalone.available()
    if why:
        pytest.skip('Ironic tests need the ironic package: %s' % why)
    needs_ipmitool()
    svc = testing.IronicStandalone()
    svc.start()
    yield svc
    svc.stop()
