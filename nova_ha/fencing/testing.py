"""Real fencing back ends on 127.0.0.1, for tests and benchmarks.

* :class:`SushyEmulator` -- sushy-tools' Redfish emulator with its fake
  system driver, in a child process with its own state directory. Its
  power changes take effect after a random 1-11 s like a slow BMC
  (``power_delay='random'``, the emulator unchanged), or after a fixed
  number of seconds (``power_delay=0`` for speed): this module's
  ``__main__`` replaces the fake driver's ``random.randint`` before running
  the emulator -- nothing else is changed. Optional basic auth (bcrypt
  htpasswd file, as the emulator requires) and TLS (self-signed
  certificate made with openssl).
* :class:`IronicStandalone` -- the real ``ironic`` all-in-one service
  (API + conductor in one process), SQLite, noauth, no RPC bus, hardware
  types fake-hardware, ipmi and redfish.

The virtual IPMI BMC is :class:`nova_ha.sim.vbmc.VBMCProcess`.
"""

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

LOOPBACK = '127.0.0.1'


def free_port(kind=socket.SOCK_STREAM):
    """A port free on 127.0.0.1 right now (TCP by default, or UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _wait_http(url, proc, timeout, log=None, what='service'):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                r.read()
                return
        except urllib.error.HTTPError:
            return          # it answers (e.g. 401): it is up
        except Exception as exc:   # noqa: BLE001
            last = exc
        time.sleep(0.1)
    tail = ''
    if log and os.path.exists(log):
        with open(log, errors='replace') as f:
            tail = ''.join(f.readlines()[-30:])
    raise RuntimeError('%s at %s did not come up within %.0f s (exit %s, '
                       'last error %s)\n%s' % (what, url, timeout,
                                               proc.poll(), last, tail))


def _terminate(proc, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_self_signed_cert(directory, cn=LOOPBACK):
    """(cert_path, key_path) of a self-signed certificate for 127.0.0.1."""
    cert = os.path.join(directory, 'bmc.crt')
    key = os.path.join(directory, 'bmc.key')
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
         '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=%s' % cn,
         '-addext', 'subjectAltName=IP:%s' % cn,
         '-addext', 'basicConstraints=critical,CA:TRUE'],
        check=True, capture_output=True)
    return cert, key


class SushyEmulator:
    """sushy-tools' Redfish emulator (fake driver) on a loopback port."""

    def __init__(self, systems, port=None, power_delay='random',
                 username=None, password=None, tls=False, workdir=None):
        """``systems``: list of (uuid, name, 'On'|'Off')."""
        self.systems = [
            {'uuid': u, 'name': n, 'power_state': p,
             'external_notifier': False, 'nics': []}
            for u, n, p in systems]
        self.port = port or free_port()
        self.power_delay = power_delay
        self.username = username
        self.password = password
        self.tls = tls
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix='sushy-emu-')
        self.proc = None
        self.cert = None
        self.log = os.path.join(self.workdir, 'emulator.log')

    @property
    def url(self):
        return '%s://%s:%d' % ('https' if self.tls else 'http', LOOPBACK,
                               self.port)

    def _write_config(self):
        state = os.path.join(self.workdir, 'state')
        os.makedirs(state, exist_ok=True)
        lines = [
            'SUSHY_EMULATOR_FAKE_DRIVER = True',
            'SUSHY_EMULATOR_FAKE_SYSTEMS = %r' % (self.systems,),
            'SUSHY_EMULATOR_STATE_DIR = %r' % state,
            'SUSHY_EMULATOR_LISTEN_IP = %r' % LOOPBACK,
            'SUSHY_EMULATOR_LISTEN_PORT = %d' % self.port,
        ]
        if self.username:
            import bcrypt
            hashed = bcrypt.hashpw(self.password.encode(),
                                   bcrypt.gensalt(rounds=4)).decode()
            auth = os.path.join(self.workdir, 'htpasswd')
            with open(auth, 'w') as f:
                f.write('%s:%s\n' % (self.username, hashed))
            lines.append('SUSHY_EMULATOR_AUTH_FILE = %r' % auth)
        if self.tls:
            self.cert, key = make_self_signed_cert(self.workdir)
            lines.append('SUSHY_EMULATOR_SSL_CERT = %r' % self.cert)
            lines.append('SUSHY_EMULATOR_SSL_KEY = %r' % key)
        path = os.path.join(self.workdir, 'emulator.conf')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return path

    def start(self, timeout=20):
        conf = self._write_config()
        cmd = [sys.executable, '-m', 'nova_ha.fencing.testing', 'sushy',
               '--power-delay', str(self.power_delay), '--config', conf]
        env = dict(os.environ, SUSHY_EMULATOR_STATE_DIR=os.path.join(
            self.workdir, 'state'))
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen(cmd, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL)
        _wait_http(self.url + '/redfish/v1/', self.proc, timeout, self.log,
                   'sushy-tools emulator')
        return self

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        _terminate(self.proc)
        self.proc = None
        if self._own_dir:
            import shutil
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


IRONIC_CONF = """\
[DEFAULT]
auth_strategy = noauth
rpc_transport = none
host = nova-ha-test-conductor
enabled_hardware_types = fake-hardware,ipmi,redfish
enabled_power_interfaces = fake,ipmitool,redfish
enabled_management_interfaces = fake,ipmitool,redfish
enabled_boot_interfaces = fake,pxe,redfish-virtual-media
enabled_deploy_interfaces = fake,ramdisk
enabled_network_interfaces = noop
enabled_inspect_interfaces = no-inspect
enabled_console_interfaces = no-console
enabled_vendor_interfaces = no-vendor
enabled_raid_interfaces = no-raid
enabled_bios_interfaces = no-bios
enabled_rescue_interfaces = no-rescue
enabled_firmware_interfaces = no-firmware
use_stderr = true
log_file =
debug = false
[api]
host_ip = 127.0.0.1
port = {port}
[database]
connection = sqlite:///{db}
[ipmi]
min_command_interval = 1
command_retry_timeout = 3
[dhcp]
dhcp_provider = none
[conductor]
automated_clean = false
sync_power_state_interval = -1
[oslo_concurrency]
lock_path = {workdir}/locks
"""


class IronicStandalone:
    """The real Ironic service (API + conductor), SQLite, noauth."""

    def __init__(self, port=None, workdir=None):
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix='ironic-')
        self.conf = os.path.join(self.workdir, 'ironic.conf')
        self.log = os.path.join(self.workdir, 'ironic.log')
        self.proc = None

    @property
    def endpoint(self):
        return 'http://%s:%d' % (LOOPBACK, self.port)

    @staticmethod
    def available():
        """None if Ironic can run here, else why not."""
        try:
            import ironic  # noqa: F401
        except ImportError as exc:
            return 'ironic is not installed (pip install "ironic>=39,<40"): ' \
                   '%s' % exc
        return None

    def _bin(self, name):
        path = os.path.join(os.path.dirname(sys.executable), name)
        if not os.path.exists(path):
            import shutil
            path = shutil.which(name) or name
        return path

    def start(self, timeout=60):
        with open(self.conf, 'w') as f:
            f.write(IRONIC_CONF.format(
                port=self.port, workdir=self.workdir,
                db=os.path.join(self.workdir, 'ironic.sqlite')))
        subprocess.run([self._bin('ironic-dbsync'), '--config-file',
                        self.conf, 'create_schema'], check=True,
                       capture_output=True, timeout=120)
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen(
                [self._bin('ironic'), '--config-file', self.conf],
                stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        _wait_http(self.endpoint + '/v1', self.proc, timeout, self.log,
                   'ironic')
        return self

    def client(self):
        from ironicclient import client
        return client.get_client(1, endpoint=self.endpoint,
                                 auth_type='none',
                                 os_ironic_api_version='latest')

    def stop(self):
        _terminate(self.proc, timeout=15)
        self.proc = None
        if self._own_dir:
            import shutil
            shutil.rmtree(self.workdir, ignore_errors=True)


def new_uuid():
    return str(uuid.uuid4())


def _run_sushy(argv):
    import argparse
    parser = argparse.ArgumentParser(prog='python -m nova_ha.fencing.testing '
                                          'sushy')
    parser.add_argument('--power-delay', default='random',
                        help="'random' (emulator default, 1-11 s) or seconds")
    parser.add_argument('--config', required=True)
    args = parser.parse_args(argv)
    if args.power_delay != 'random':
        delay = int(float(args.power_delay))
        from sushy_tools.emulator.resources.systems import fakedriver

        class _FixedDelay:
            @staticmethod
            def randint(a, b):
                return delay

        fakedriver.random = _FixedDelay
    from sushy_tools.emulator import main as emulator
    sys.argv = ['sushy-emulator', '--config', args.config]
    return emulator.main()


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == 'sushy':
        sys.exit(_run_sushy(sys.argv[2:]))
    sys.exit('usage: python -m nova_ha.fencing.testing sushy ...')
