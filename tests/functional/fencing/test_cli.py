"""``nova-ha fence ...`` as an operator runs it: the real console entry
point in a child process, against virtual BMCs. Checks the printed outcome
and duration, the exit codes, and that no password is ever printed.

The commands run concurrently (each pays the CLI's start-up once)."""

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.functional.fencing.conftest import ipmi_entry
from tests.functional.fencing.conftest import PASSWORD
from tests.functional.fencing.conftest import write_inventory

WRONG = 'Cli-Wr0ng-Pw-55'


def run_cli(args, config=None):
    cmd = [sys.executable, '-m', 'nova_ha.cmd.cli']
    if config:
        cmd += ['--config-file', config]
    p = subprocess.run(cmd + list(args), capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def run_all(commands, config=None):
    # A few at a time: each start-up costs ~1 s of CPU on a 2-core box.
    with ThreadPoolExecutor(3) as pool:
        return dict(zip(commands, pool.map(
            lambda c: run_cli(c.split('|'), config), commands)))


SECONDS = re.compile(r' in \d+\.\d{3} s')


def test_fence_commands_exit_codes_and_output(vbmc, tmp_path):
    good = vbmc()
    off_later = vbmc()
    silent = vbmc()
    conf = tmp_path / 'nova-ha.conf'
    conf.write_text('[fencing]\ncommand_timeout = 3.0\nfence_timeout = 4.0\n'
                    'retry_backoff = 0.1\npoll_interval = 0.05\n')
    inv = write_inventory(tmp_path / 'inv.yaml', {
        'compute-1.example.org': ipmi_entry(good),
        'compute-2': ipmi_entry(good, password=WRONG),
        'compute-3': ipmi_entry(silent),
        'compute-4': ipmi_entry(off_later),
        'compute-5.dc1.example.org': ipmi_entry(good),
        'compute-5.dc2.example.org': ipmi_entry(good)})
    bad = write_inventory(tmp_path / 'bad.yaml', {
        'c1': ipmi_entry(good, password=WRONG, port='six-two-three')})
    record = tmp_path / 'confirmations.jsonl'
    i = '|--inventory|' + inv
    silent.pause()
    try:
        out = run_all([
            'fence|off|compute-1' + i,
            'fence|status|compute-4.example.org' + i,
            'fence|on|compute-4' + i,
            'fence|off|compute-2' + i,
            'fence|status|compute-2' + i + '|--json',
            'fence|off|compute-3' + i,
            'fence|off|compute-9' + i,
            'fence|off|compute-5' + i,
            'fence|check|--inventory|' + bad,
            'fence|confirm|compute-3' + i + '|--operator|alice|--reason|'
            'PDU outlet off|--record-file|' + str(record),
            'fence|confirm|compute-3' + i,
            'fence|confirm|--help',
        ], config=str(conf))
        # fence check reads every BMC: run alone, after the others (the
        # virtual BMCs serve a few sessions at once)
        for cmd in ('fence|check|--no-nova' + i,
                    'fence|check|--no-nova|--no-bmc' + i):
            out[cmd] = run_cli(cmd.split('|'), str(conf))
    finally:
        silent.resume()

    def get(cmd):
        return out[cmd.replace(' ', '|')]

    # 0: fenced, power read off, duration printed
    rc, so, se = get('fence off compute-1' + i.replace('|', ' '))
    assert rc == 0, se
    assert 'compute-1: FENCED' in so and SECONDS.search(so), so
    # 0: status of an FQDN via the inventory's short name
    rc, so, se = get('fence status compute-4.example.org' + i.replace(
        '|', ' '))
    assert rc == 0 and 'power on' in so and 'read in' in so, so + se
    rc, so, se = get('fence on compute-4' + i.replace('|', ' '))
    assert rc == 0 and 'compute-4: power on in' in so, so + se
    # 1: wrong password, FAILED with the BMC's reason
    rc, so, se = get('fence off compute-2' + i.replace('|', ' '))
    assert rc == 1 and 'FAILED' in so and 'credentials' in so, so + se
    rc, so, se = get('fence status compute-2' + i.replace('|', ' ')
                     + ' --json')
    assert rc == 1 and json.loads(so)['result'] == 'FAILED'
    # 3: BMC not answering -> UNREACHABLE within fence_timeout (4 s)
    rc, so, se = get('fence off compute-3' + i.replace('|', ' '))
    assert rc == 3 and 'UNREACHABLE' in so, so + se
    took = float(SECONDS.search(so).group(0).split()[1])
    assert took <= 4.0 + 0.5
    # 2: host not in the inventory; ambiguous short name names both
    rc, so, se = get('fence off compute-9' + i.replace('|', ' '))
    assert rc == 2 and 'compute-9' in se
    rc, so, se = get('fence off compute-5' + i.replace('|', ' '))
    assert rc == 2 and 'dc1' in se and 'dc2' in se
    # check
    # check reads every BMC with its credentials: the wrong password is
    # FAILED (1, worse than the silent BMC's UNREACHABLE)
    rc, so, se = get('fence check --no-nova' + i.replace('|', ' '))
    assert rc == 1, so + se
    assert re.search(r'compute-2: ipmi FAILED in .*credentials', so), so
    assert 'compute-3: ipmi UNREACHABLE' in so, so
    assert re.search(r'compute-1.example.org: ipmi, power o(n|ff) ', so), so
    assert '6 host(s), compute hosts not checked (--no-nova); 2 problem(s)' \
        in so, so
    rc, so, se = get('fence check --no-nova --no-bmc' + i.replace('|', ' '))
    assert rc == 0 and '6 host(s)' in so and 'OK' in so, so + se
    rc, so, se = get('fence check --inventory ' + bad)
    assert rc == 2 and 'c1' in se and 'port' in se
    # confirm: recorded with who and when; without --operator: usage error
    rc, so, se = out['fence|confirm|compute-3' + i
                     + '|--operator|alice|--reason|PDU outlet off'
                     '|--record-file|' + str(record)]
    assert rc == 0 and 'FENCED (confirmed by alice' in so, so + se
    rec = json.loads(record.read_text().splitlines()[0])
    assert rec['confirmed_by'] == 'alice' and rec['kind'] == 'confirm'
    assert rec['host'] == 'compute-3' and rec['started_at']
    assert 'PDU outlet off' in rec['reason']
    rc, so, se = get('fence confirm compute-3' + i.replace('|', ' '))
    assert rc == 2 and '--operator' in se
    # help
    rc, so, se = out['fence|confirm|--help']
    assert rc == 0 and '--operator' in so and 'exit codes' in so

    # No password anywhere, whatever happened.
    for cmd, (rc, so, se) in out.items():
        for secret in (PASSWORD, WRONG):
            assert secret not in so + se, (cmd, so, se)
