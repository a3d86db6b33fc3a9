"""The agent's process watchdog restarts real processes it watches."""

import os
import shutil
import signal
import time

import psutil
import pytest

from nova_ha.heartbeat import watchdog


def wait_state(wd, name, state, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if wd.check()[name] == state:
            return True
        time.sleep(0.02)
    return False


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def cleanup():
    pids = []
    yield pids
    for pid in pids:
        kill(pid)


def pid_of(pidfile):
    with open(pidfile) as f:
        return int(f.read())


def test_pidfile_restart_after_kill(tmp_path, cleanup):
    pidfile = str(tmp_path / 'svc.pid')
    cmd = ['sh', '-c', 'sleep 1000 & echo $! > %s' % pidfile]
    wd = watchdog.Watchdog(
        [watchdog.ProcessSpec('svc', restart_command=cmd, pidfile=pidfile)],
        backoff_initial=0.05, backoff_max=0.2)
    # Not running at first: the watchdog starts it.
    assert wd.check()['svc'] == 'restarting'
    assert wait_state(wd, 'svc', 'running')
    first = pid_of(pidfile)
    cleanup.append(first)
    # sh forks, then the child execs sleep: give it a moment
    end = time.monotonic() + 10
    while psutil.Process(first).name() != 'sleep':
        assert time.monotonic() < end
        time.sleep(0.01)

    kill(first)
    time.sleep(0.3)
    states = [wd.check()['svc']]
    assert states[0] in ('dead', 'restarting')
    assert wait_state(wd, 'svc', 'running')
    second = pid_of(pidfile)
    cleanup.append(second)
    assert second != first and psutil.pid_exists(second)
    assert wd.restarts('svc') == 2


def test_process_name_match_and_report_only(tmp_path, cleanup):
    # A uniquely named "daemon": a symlink to sleep (comm = link name).
    name = 'nhtest-%d' % os.getpid()
    link = tmp_path / name
    link.symlink_to(shutil.which('sleep'))
    wd = watchdog.Watchdog(
        [watchdog.ProcessSpec('svc', process_name=name,
                              restart_command=[str(link), '1000']),
         watchdog.ProcessSpec('ghost', process_name='nhtest-no-such')],
        backoff_initial=0.05)
    assert wd.check()['ghost'] == 'dead'    # report only: no command
    assert wait_state(wd, 'svc', 'running')
    pid = [p.pid for p in psutil.process_iter(['name'])
           if p.info['name'] == name]
    assert len(pid) == 1
    cleanup.extend(pid)
    kill(pid[0])
    time.sleep(0.2)
    assert wd.check()['svc'] in ('dead', 'restarting')
    assert wait_state(wd, 'svc', 'running')
    new = [p.pid for p in psutil.process_iter(['name'])
           if p.info['name'] == name and p.status() != 'zombie']
    cleanup.extend(new)
    assert len(new) == 1 and new != pid
    assert wd.states() == {'svc': 'running', 'ghost': 'dead'}
    wd.close()


def test_restarts_are_bounded_with_backoff(tmp_path):
    t = [0.0]
    wd = watchdog.Watchdog(
        [watchdog.ProcessSpec('svc', restart_command=['false'],
                              pidfile=str(tmp_path / 'none.pid'))],
        max_restarts=3, restart_window=100.0, backoff_initial=1.0,
        backoff_max=4.0, clock=lambda: t[0])
    tries = []
    for step in range(60):     # 30 simulated seconds, a check every 0.5 s
        before = wd.restarts('svc')
        wd.check()
        time.sleep(0.01 if step % 10 else 0.05)   # let `false` exit
        if wd.restarts('svc') > before:
            tries.append(t[0])
        t[0] += 0.5
    # attempts at 0, then >= 1 s, then >= 2 s later; then it gives up
    assert len(tries) == 3
    assert tries[1] - tries[0] >= 1.0 and tries[2] - tries[1] >= 2.0
    assert wd.states()['svc'] == 'failed'
    # attempts age out of the window: it tries again
    t[0] = 200.0
    wd.check()
    assert wd.restarts('svc') == 1
    wd.close()


def test_duplicate_names_rejected():
    with pytest.raises(ValueError, match='unique'):
        watchdog.Watchdog([watchdog.ProcessSpec('a'),
                           watchdog.ProcessSpec('a')])
