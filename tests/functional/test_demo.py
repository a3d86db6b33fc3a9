"""``nova-ha-sim demo`` end to end, with ``nova-ha report`` after a real
recovery: the report's table agrees with the recovery's timeline, and the
timeline chart is a valid SVG naming the recovered instance."""

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

SVG = '{http://www.w3.org/2000/svg}'


def _section(lines, title):
    start = lines.index('  %s:' % title) + 1
    rows = []
    for line in lines[start:]:
        # A section ends at a blank line or at the next section's title.
        if not line.strip() or line.rstrip().endswith(':'):
            break
        rows.append(line.split())
    return rows


@pytest.mark.timeout(600)
def test_demo_recovers_and_reports(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, '-m', 'nova_ha.sim.cli', 'demo'],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=540, env=env)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:]
    lines = out.splitlines()
    assert re.search(r'recovery \d+ of compute\d+: done', out), out

    # The demo's timeline, seconds after the power loss.
    detected = float(re.search(r'([+-]\d+\.\d+) s  HOST_DOWN confirmed',
                               out).group(1))
    fenced = float(re.search(r'([+-]\d+\.\d+) s  fenced:', out).group(1))
    m = re.search(r'([+-]\d+\.\d+) s  vnf-a-1 on (compute\d+) '
                  r'\((?:ACTIVE; )?migration \d+ done\)', out)
    active, dest = float(m.group(1)), m.group(2)
    # ... and the final placement shows it ACTIVE there.
    assert re.search(r'vnf-a-1\s+%s\s+\S+\s+\S+\s+ACTIVE' % dest, out), out

    # The four app-N instances of the failed host went where the
    # evacuator planned (validated by nova-scheduler), spread: at most
    # ceil(5 / 7 eligible hosts) + 1 on one host.
    planned = re.findall(r'evacuate (app-\d) -> (compute\d+) \(planned\)',
                         out)
    assert sorted(n for n, _ in planned) == ['app-1', 'app-2', 'app-3',
                                              'app-4'], out
    for name, host in planned:
        assert re.search(r'%s on %s \(' % (name, host), out), out
    most = int(re.search(r'spread: .*\(most on one host: (\d+)',
                         out).group(1))
    assert most <= 2, out

    # The report: five outages (vnf-a-1, app-1..4), group named via Nova.
    head = [ln for ln in lines if 'nova-ha HA report:' in ln]
    assert len(head) == 1, out
    assert '1 recovery, 5 outages of 5 instances: 5 recovered, 0 not ' \
        'recovered' in out
    groups = _section(lines, 'server groups')
    assert groups[0][:4] == ['GROUP', 'INSTANCES', 'OUTAGES', 'RECOVERED']
    assert groups[1][:4] == ['vnf-a', '1', '1', '1']
    assert groups[-1][:4] == ['(all)', '5', '5', '5']
    outages = _section(lines, 'outages')
    header = outages[0]
    assert len(outages) == 6
    (row,) = [r for r in outages[1:] if 'vnf-a-1' in r]
    cell = dict(zip(header, row))
    assert (cell['GROUP'], cell['NAME'], cell['STATE'], cell['SAL'],
            cell['DEST']) == ('vnf-a', 'vnf-a-1', 'done', '1', dest)
    # TTR and FENCING agree with the timeline (both from the journal,
    # rounded to the millisecond there).
    assert float(cell['TTR']) == pytest.approx(active - detected, abs=0.003)
    assert float(cell['FENCING']) == pytest.approx(fenced - detected,
                                                   abs=0.003)
    # Downtime runs from the last heartbeat the evacuator received, which
    # the timeline shows too: downtime = TTR + detection.
    last = float(re.search(r'([+-]\d+\.\d+) s  last heartbeat received',
                           out).group(1))
    assert last < detected
    assert float(cell['DOWNTIME']) == pytest.approx(active - last, abs=0.003)
    assert float(cell['DETECTION']) == pytest.approx(detected - last,
                                                     abs=0.003)

    # The chart, kept after the demo in its state dir's report/.
    m = re.search(r'recovery timeline chart \(kept after the demo\): (\S+)',
                  out)
    assert m, out
    path = m.group(1)
    assert path.startswith(str(tmp_path)) and path.endswith('.svg')
    root = ET.parse(path).getroot()
    assert root.tag == SVG + 'svg'
    texts = ' '.join(t.text or '' for t in root.iter(SVG + 'text'))
    for name in ('vnf-a-1', 'vnf-a', 'fencing', 'evacuating'):
        assert name in texts
    # the rest of the demo's state is gone
    assert os.listdir(os.path.dirname(os.path.dirname(path))) == ['report']
