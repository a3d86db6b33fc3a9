"""nova-ha-agent: configuration checks, a real run, signals, no secrets."""

import os
import signal
import subprocess
import sys
import time

import pytest
from oslo_config import cfg

from nova_ha.cmd import agent as agent_cmd
from nova_ha.conf import heartbeat as hb_conf
from nova_ha.heartbeat import protocol
from nova_ha.heartbeat import receiver as hb_receiver

KEY = 'secret-' + os.urandom(16).hex()
BIN = os.path.join(os.path.dirname(sys.executable), 'nova-ha-agent')


def write_conf(tmp_path, body, key_file=True):
    kf = tmp_path / 'hb.key'
    kf.write_text('# heartbeat key\n%s\n' % KEY)
    kf.chmod(0o600)
    text = '[DEFAULT]\nlog_file = %s\n[heartbeat]\n' % (tmp_path / 'a.log')
    if key_file:
        text += 'key_file = %s\n' % kf
    text += 'state_file = %s\n' % (tmp_path / 'state' / 'epoch')
    text += 'watch_processes =\n'
    text += body
    path = tmp_path / 'agent.conf'
    path.write_text(text)
    return str(path)


def run_main(tmp_path, body, capsys, **kw):
    path = write_conf(tmp_path, body, **kw)
    rc = agent_cmd.main(['--config-file', path], conf=cfg.ConfigOpts())
    err = capsys.readouterr().err
    return rc, err


@pytest.mark.parametrize('body,needle', [
    ('planes = management,storage\n'
     'target = management=127.0.0.1:4800\ntarget = storag=127.0.0.1:4801\n',
     "target = 'storag=127.0.0.1:4801': plane 'storag' is not in "
     "[heartbeat] planes (management, storage)"),
    ('planes = management,storage\ntarget = management=127.0.0.1:4800\n',
     'target: no address for plane(s) storage'),
    ('target = management=127.0.0.1:99999\n',
     "target = 'management=127.0.0.1:99999'"),
    ('target = management=::1:4800\n', 'write IPv6 as [addr]:port'),
    ('target = management\n', 'expected PLANE=ADDRESS[:PORT]'),
    ('target = management=no-such-host.invalid:4800\n',
     "cannot resolve 'no-such-host.invalid'"),
    ('target = management=127.0.0.1:x\n', "port 'x' is not a number"),
    ('target = management=127.0.0.1:4800\nsal = 1\n'
     'sal_interval_ms = 1:fast\n', "sal_interval_ms = '1:fast'"),
    ('target = management=127.0.0.1:4800\ninterval_ms = 1\n',
     'interval_ms'),
])
def test_bad_config_refuses_to_start(tmp_path, capsys, body, needle):
    rc, err = run_main(tmp_path, body, capsys)
    assert rc == 2
    assert needle in err, err
    assert KEY not in err


def test_missing_and_weak_key(tmp_path, capsys):
    rc, err = run_main(tmp_path, 'target = management=127.0.0.1:4800\n',
                       capsys, key_file=False)
    assert rc == 2 and 'key_file (or key) is required' in err
    rc, err = run_main(tmp_path, 'key = tooshort\n'
                       'target = management=127.0.0.1:4800\n', capsys,
                       key_file=False)
    assert rc == 2 and "[heartbeat] key = '***'" in err
    assert 'tooshort' not in err
    rc, err = run_main(tmp_path, 'key_file = %s\n' % (tmp_path / 'nope') +
                       'target = management=127.0.0.1:4800\n', capsys,
                       key_file=False)
    assert rc == 2 and 'key_file' in err and 'nope' in err


def test_conf_helpers(tmp_path):
    conf = cfg.ConfigOpts()
    hb_conf.register_opts(conf)
    path = write_conf(tmp_path, 'planes = management, storage\n'
                      'listen = management=127.0.0.1:0\n'
                      'listen = storage=[::1]:0\n'
                      'listen = storage=localhost:0\n'
                      'target = management=10.0.0.1\n'
                      'target = management=10.0.0.2:4900\n'
                      'target = storage=[2001:db8::1]:4800\n'
                      'interval_ms = 200\nsal_interval_ms = 1:100\n'
                      'watch_processes = nova-compute, libvirtd\n'
                      '[watch:libvirtd]\npidfile = /run/libvirtd.pid\n'
                      'restart_command =\n')
    conf(['--config-file', path])
    assert hb_conf.plane_addresses(conf, 'target') == {
        'management': [('10.0.0.1', 4800), ('10.0.0.2', 4900)],
        'storage': [('2001:db8::1', 4800)]}
    listen = hb_conf.plane_addresses(conf, 'listen')
    assert listen['storage'][0] == ('::1', 0)
    assert listen['storage'][1][0] in ('127.0.0.1', '::1')
    assert hb_conf.interval_for(conf) == 0.2
    assert hb_conf.interval_for(conf, sal=1) == 0.1
    specs = {s.name: s for s in hb_conf.watch_specs(conf)}
    assert specs['nova-compute'].restart_command == [
        'systemctl', 'restart', 'nova-compute']
    assert specs['nova-compute'].process_name == 'nova-compute'
    assert specs['libvirtd'].pidfile == '/run/libvirtd.pid'
    assert specs['libvirtd'].restart_command is None
    assert len(hb_conf.load_keyring(conf)) == 1
    # The key never shows in --help style output or option dumps.
    opt = [o for o in hb_conf.OPTS if o.name == 'key'][0]
    assert opt.secret


def test_agent_runs_reports_processes_and_stops_on_sigterm(tmp_path):
    recv = hb_receiver.HeartbeatReceiver(
        {'management': [('127.0.0.1', 0)], 'storage': [('127.0.0.1', 0)]},
        protocol.Keyring(KEY), default_window=0.5)
    recv.start()
    sleeper = subprocess.Popen(['sleep', '1000'])
    pidfile = tmp_path / 'svc.pid'
    pidfile.write_text('%d\n' % sleeper.pid)
    (mg,), (st,) = recv.addresses['management'], recv.addresses['storage']
    path = write_conf(tmp_path, (
        'planes = management, storage\n'
        'target = management=127.0.0.1:%d\ntarget = storage=127.0.0.1:%d\n'
        'interval_ms = 50\nhost = agent-host-1\n'
        'watch_processes = svc\nwatch_interval = 0.1\n'
        '[watch:svc]\npidfile = %s\nrestart_command =\n'
        '[DEFAULT]\ndebug = true\n') % (mg[1], st[1], pidfile))
    proc = subprocess.Popen([BIN, '--config-file', path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 20
        while recv.heartbeat_state('agent-host-1') != 'ALIVE':
            assert time.monotonic() < end, proc.stderr.read1()
            time.sleep(0.05)
        assert recv.host_view('agent-host-1').processes == {
            'svc': 'running'}
        sleeper.kill()
        sleeper.wait()
        end = time.monotonic() + 15
        while recv.host_view('agent-host-1').processes['svc'] != 'dead':
            assert time.monotonic() < end
            time.sleep(0.05)
        # the agent restarts with a newer epoch, accepted at once
        first_epoch = recv.host_view('agent-host-1').epoch
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        proc = subprocess.Popen([BIN, '--config-file', path],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        end = time.monotonic() + 20
        while recv.host_view('agent-host-1').epoch == first_epoch:
            assert time.monotonic() < end
            time.sleep(0.05)
        assert recv.host_view('agent-host-1').epoch > first_epoch
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        if sleeper.poll() is None:
            sleeper.kill()
        recv.stop()
    rej = recv.counters()['rejected']
    assert sum(rej.values()) == 0, rej
    log = (tmp_path / 'a.log').read_text()
    assert 'agent-host-1' in log and 'stopped (signal 15)' in log
    assert 'stopped (signal 2)' in log
    # Debug logging dumps the configuration: the key must not appear.
    assert KEY not in log
    assert "heartbeat.key                  = ****" in log, log
    out = proc.stdout.read() + proc.stderr.read()
    assert KEY.encode() not in out


def until(pred, timeout=20.0):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end
        time.sleep(0.01)


def test_secrets_absent_from_logs(caplog, tmp_path):
    """Everything the heartbeat code logs, at DEBUG, on good and bad
    packets, with the key in use: the key (and its hex) never appears."""
    import logging
    from nova_ha.heartbeat import agent as hb_agent
    caplog.set_level(logging.DEBUG)
    key = os.urandom(32)
    ring = protocol.Keyring(key)
    r = hb_receiver.HeartbeatReceiver({'management': [('127.0.0.1', 0)]},
                                      ring, default_window=0.1)
    r._batch_delay = 0
    with r:
        a = hb_agent.Agent('h1', r.addresses, ring)
        a.beat()
        a.beat()
        bad = hb_agent.Agent('h1', r.addresses,
                             protocol.Keyring(os.urandom(32)))
        bad.beat()
        until(lambda: r.counters()['rejected']['bad_mac'] == 1)
        time.sleep(0.2)        # a silent event (window 0.1 s) gets logged
        a.restart()
        a.beat()
        until(lambda: r.counters()['accepted'] == 3)
        texts = [repr(r), repr(a), repr(ring), str(r.counters())]
    text = caplog.text + ''.join(texts)
    assert 'bad_mac' in caplog.text
    for needle in (key.hex(), repr(key), key.decode('latin-1')):
        assert needle not in text
    a.close()
    bad.close()


def test_derive_host_key_and_per_host_mode(tmp_path, capsys):
    # On the evacuator: derive cmp-a's key from the master key.
    evac = tmp_path / 'evac'
    evac.mkdir()
    path = write_conf(evac, 'key_mode = per_host\n'
                      'listen = management=127.0.0.1:0\n')
    rc = agent_cmd.main(['--config-file', path, '--derive-host-key',
                         'cmp-a'], conf=cfg.ConfigOpts())
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = [ln for ln in out.splitlines() if not ln.startswith('#')]
    assert lines == [protocol.derive_host_key(KEY, 'cmp-a')]
    conf = cfg.ConfigOpts()
    hb_conf.register_opts(conf)
    conf(['--config-file', path])
    recv = hb_conf.make_receiver(conf)
    assert isinstance(recv._keyring, protocol.HostKeyring)
    # On cmp-a: its key_file holds only the derived key.
    ring_a = protocol.Keyring(lines)
    pkt = protocol.encode(ring_a, 'cmp-a', 'management', 1, 1, time.time())
    assert recv.handle(pkt, 'management') is not None
    pkt = protocol.encode(ring_a, 'cmp-b', 'management', 1, 1, time.time())
    assert recv.handle(pkt, 'management') is None
    assert recv.counters()['rejected']['bad_mac'] == 1
