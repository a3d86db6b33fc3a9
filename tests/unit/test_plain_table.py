"""One plain-text table (nova_ha.journal.cli.plain_table) for every
plain-text output: listings' ``-f text``, reports, ``capacity check``,
``nova-ha-sim status``."""

import io

from nova_ha.capacity import cli as capacity_cli
from nova_ha.journal import cli as journal_cli
from nova_ha.sim import cli as sim_cli


def test_plain_table_layout():
    assert journal_cli.plain_table(('A', 'LONG'), [('xyz', None),
                                                   (1, 'b')]) == (
        'A    LONG\n'
        'xyz  -\n'
        '1    b')


def test_capacity_check_prints_the_plain_table(monkeypatch):
    data = {'policies': [{'policy': 'sal1:1 rack', 'approximate': False}],
            'scenarios': [{'policy': 'sal1:1 rack', 'failure': 'rack r1',
                           'fits': False, 'exact': True,
                           'stranded': [{'name': 'a-100', 'uuid': 'u1',
                                         'host': None, 'kind': 'no room',
                                         'reason': 'no room: full'}]}],
            'problems': [], 'fits': False}
    monkeypatch.setattr(capacity_cli, 'as_dict', lambda c, e: data)
    out = io.StringIO()
    capacity_cli.render_table(None, None, out)
    head = ('POLICY', 'FAILURE', 'INSTANCE', 'UUID', 'HOST', 'WHY', 'DETAIL')
    row = ('sal1:1 rack', 'rack r1', 'a-100', 'u1', None, 'no room',
           'no room: full')
    assert out.getvalue() == (
        'policy sal1:1 rack: 1 scenario(s), 1 do not fit\n'
        + journal_cli.plain_table(head, [row]) + '\nNO FIT\n')
    assert 'u1    -     no room' in out.getvalue()


def test_sim_status_prints_the_plain_table(capsys):
    sim_cli._print_hosts([
        {'name': 'compute01', 'topology': {'rack': 'r1'}, 'power': 'on',
         'compute_running': True, 'planes': {'mgmt': True, 'storage': False},
         'faults': []},
        {'name': 'compute02', 'topology': {}, 'power': 'off',
         'compute_running': False, 'planes': {'mgmt': True},
         'faults': ['power_loss']}])
    assert capsys.readouterr().out == (
        'HOST       RACK  POWER  COMPUTE  PLANES DOWN  FAULTS\n'
        'compute01  r1    on     up       storage      -\n'
        'compute02  -     off    stopped  -            power_loss\n')
