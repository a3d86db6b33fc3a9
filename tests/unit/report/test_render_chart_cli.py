"""Table/JSON/CSV rendering, the SVG/PNG chart and ``nova-ha report``."""

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest

from nova_ha.cmd import cli
from nova_ha.report import chart
from nova_ha.report import collect
from nova_ha.report import render
from tests.unit.report.conftest import A2, G1, G2, NAMES, at

NOW = at(86400)
INSTANCES = ('vnf-a-1', 'vnf-a-2', 'vnf-a-3', 'vnf-b-1', 'batch-1')


@pytest.fixture
def report(jrnl):
    return collect.collect(jrnl, group_names=NAMES, now=NOW)


def section(text, title):
    """The rows of one table of the text report, as lists of cells."""
    lines = text.splitlines()
    start = lines.index(title + ':') + 1
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


class TestRender:

    def test_table(self, report):
        text = render.format_table(report)
        lines = text.splitlines()
        assert lines[0] == ('nova-ha HA report: recoveries detected '
                            '(start of journal) .. 2026-11-21T10:00:00.000Z '
                            '(UTC)')
        assert lines[1] == ('3 recoveries, 6 outages of 5 instances: 4 '
                            'recovered, 2 not recovered, 1 over their SAL '
                            'recovery time')
        groups = section(text, 'server groups')
        assert groups[0][:4] == ['GROUP', 'INSTANCES', 'OUTAGES',
                                 'RECOVERED']
        assert groups[1] == ['vnf-a', '3', '4', '3', '17.400', '5.600',
                             '7.000', '7.000', '5.600', '7.000', '7.000',
                             '2.000', '3.000']
        assert groups[2][:5] == ['vnf-b', '1', '1', '1', '9.100']
        assert groups[3][:2] == ['(no', 'group)']
        assert groups[4][:5] == ['(all)', '5', '6', '4', '26.500']
        inst = section(text, 'instances')
        assert inst[1] == ['vnf-a', 'aaaaaaaa-0000-0000-0000-000000000001',
                           'vnf-a-1', '2', '2', '12.600', '7.000', '7.000',
                           '3.000']
        outages = section(text, 'outages')
        a2 = [r for r in outages if 'vnf-a-2' in r][0]
        assert a2 == ['2026-11-20T10:59:59.200Z', '2', 'compute02', 'vnf-a',
                      'vnf-a-2', '1', 'done', '0.800', '2.000', '1.500',
                      '4.000', '4.800', 'yes', 'compute09']
        a1_again = outages[-1]
        assert a1_again[4] == 'vnf-a-1' and a1_again[-2:] == ['NO',
                                                              'compute09']
        moves = [ln for ln in lines if 'compute07' in ln]
        assert len(moves) == 1 and 'live' in moves[0] and \
            '3.250' in moves[0]
        assert 'DOWNTIME = TTR' in text    # failure time not known

    def test_group_uuid_without_names(self, jrnl):
        text = render.format_table(collect.collect(jrnl, now=NOW))
        assert section(text, 'server groups')[1][0] == G1

    def test_empty(self, jrnl):
        text = render.format_table(collect.collect(jrnl, since=at(20000),
                                                   now=NOW))
        assert 'no outages in the period' in text
        assert '0 recoveries, 0 outages of 0 instances' in text

    def test_csv(self, report):
        rows = list(csv.DictReader(io.StringIO(render.format_csv(report))))
        assert len(rows) == 6
        assert tuple(rows[0]) == render.CSV_COLUMNS
        a2 = [r for r in rows if r['instance_uuid'] == A2][0]
        assert (a2['downtime'], a2['time_to_recover'], a2['detection'],
                a2['failure_at'], a2['group_name'], a2['server_group']) == (
            '4.800', '4.000', '0.800', '2026-11-20T10:59:59.200Z', 'vnf-a',
            G1)
        skipped = [r for r in rows if r['name'] == 'batch-1'][0]
        assert (skipped['state'], skipped['downtime']) == ('skipped', '')

    def test_json(self, report):
        d = json.loads(render.format_json(report))
        assert d['overall']['downtime']['total'] == pytest.approx(26.5)
        assert [g['label'] for g in d['groups']] == ['vnf-a', 'vnf-b',
                                                     '(no group)']
        a2 = [o for o in d['outages'] if o['instance_uuid'] == A2][0]
        assert a2['downtime'] == pytest.approx(4.8)
        assert a2['failure_at'] == '2026-11-20T10:59:59.200000+00:00'
        assert d['maintenance_moves'][0]['move_time'] == pytest.approx(3.25)

    def test_bad_format(self, report):
        with pytest.raises(ValueError, match="--format 'xml'"):
            render.render(report, 'xml')


class TestChart:

    def test_svg_valid_with_every_name_and_deterministic(self, report,
                                                         tmp_path):
        p1, p2 = tmp_path / 'a.svg', tmp_path / 'b.svg'
        chart.write_chart(report, str(p1))
        chart.write_chart(report, str(p2))
        data = p1.read_bytes()
        assert data == p2.read_bytes()
        root = ET.fromstring(data)
        assert root.tag == '{http://www.w3.org/2000/svg}svg'
        texts = ' '.join(t.text or '' for t in root.iter(
            '{http://www.w3.org/2000/svg}text'))
        for name in INSTANCES + ('vnf-a', 'vnf-b', '(no group)'):
            assert name in texts
        assert '(start of journal) .. 2026-11-21T10:00:00.000Z' in texts
        for phase in ('fencing', 'preparing', 'evacuating',
                      'not recovered'):
            assert phase in texts

    def test_rows_grouped(self, report):
        rows = [(label, heading) for label, heading, _ in
                chart.rows_of(report)]
        assert rows == [('vnf-a', True), ('vnf-a-1', False),
                        ('vnf-a-2', False), ('vnf-a-3', False),
                        ('vnf-b', True), ('vnf-b-1', False),
                        ('(no group)', True), ('batch-1', False)]
        a1 = [o for label, _, outs in chart.rows_of(report)
              if label == 'vnf-a-1' for o in outs]
        assert len(a1) == 2

    def test_segments(self, report):
        a2 = [o for o in report.outages if o.name == 'vnf-a-2'][0]
        segs = chart._segments(a2, report.until)
        assert [(n, (b - a).total_seconds()) for n, _, a, b, _ in segs] == [
            ('detection', pytest.approx(0.8)),
            ('fencing', pytest.approx(2.0)),
            ('preparing', pytest.approx(0.5)),
            ('evacuating', pytest.approx(1.5))]
        # not recovered: from the evacuate request to the error (30 s)
        a3 = [o for o in report.outages if o.name == 'vnf-a-3'][0]
        segs = chart._segments(a3, at(4000))
        assert [n for n, *_ in segs] == [
            'detection', 'fencing', 'preparing', 'not recovered']
        assert (segs[-1][2], segs[-1][3], segs[-1][4]) == (
            at(3602.5), at(3630), True)

    def test_panels(self, report, jrnl):
        panels = chart.panels_of(report)
        assert [t.split(chr(10))[0] for t, _ in panels] == [
            'recovery %d: compute01' % jrnl.r1.id,
            'recovery %d: compute02' % jrnl.r2.id,
            'recovery %d: compute05' % jrnl.r3.id]
        assert [len(o) for _, o in panels] == [3, 2, 1]

    def test_png_and_empty(self, jrnl, tmp_path):
        empty = collect.collect(jrnl, since=at(20000), now=NOW)
        p = tmp_path / 'x.png'
        chart.write_chart(empty, str(p))
        assert p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    def test_bad_extension(self, report, tmp_path):
        with pytest.raises(collect.ReportError,
                           match=r"--chart '.*x\.pdf': the file name must "
                                 r"end in \.svg or \.png"):
            chart.write_chart(report, str(tmp_path / 'x.pdf'))


def run(capsys, *argv):
    args = cli.build_parser().parse_args(list(argv))
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


class TestCLI:

    def test_table_and_chart(self, jrnl, url, tmp_path, capsys):
        svg = tmp_path / 'r.svg'
        rc, out, err = run(capsys, 'report', '--connection', url,
                           '--no-nova', '--since', '2026-11-20T00:00:00Z',
                           '--until', '2026-11-21', '--chart', str(svg))
        assert rc == 0, err
        assert out.splitlines()[0] == (
            'nova-ha HA report: recoveries detected 2026-11-20T00:00:00.000Z'
            ' .. 2026-11-21T00:00:00.000Z (UTC)')
        assert section(out, 'server groups')[1][:5] == [
            G1, '3', '4', '3', '17.400']
        assert out.rstrip().endswith('chart: %s' % svg)
        assert b'vnf-a-3' in svg.read_bytes()

    def test_group_uuid_json_and_host(self, jrnl, url, capsys):
        rc, out, err = run(capsys, 'report', '--connection', url,
                           '--no-nova', '--group', G2, '--format', 'json')
        assert rc == 0, err
        d = json.loads(out)
        assert [o['name'] for o in d['outages']] == ['vnf-b-1']
        assert d['groups_filter'] == [G2]
        rc, out, _ = run(capsys, 'report', '--connection', url, '--no-nova',
                         '--host', 'compute02', '--format', 'csv')
        assert rc == 0
        assert [r['name'] for r in csv.DictReader(io.StringIO(out))] == [
            'vnf-a-2', 'vnf-a-3']

    def test_relative_since_excludes_old(self, jrnl, url, capsys):
        # the fixture's recoveries are in 2026-11-20; 1h ago is later
        rc, out, _ = run(capsys, 'report', '--connection', url, '--no-nova',
                         '--since', '1h')
        assert rc == 0 and 'no outages in the period' in out

    @pytest.mark.parametrize('argv, message', [
        (('--since', 'yesterday'), "--since 'yesterday': not a time"),
        (('--until', '2026-02-30'), "--until '2026-02-30': not a time"),
        (('--since', '2026-11-21', '--until', '2026-11-20'),
         'is not before --until'),
        (('--group', 'vnf-x'), "--group 'vnf-x': no server group with "
                               "this UUID in the journal (2 known) and "
                               "names cannot be resolved without Nova "
                               "(disabled by --no-nova)"),
        (('--chart', 'out.pdf'), "--chart 'out.pdf': the file name must "
                                 "end in .svg or .png"),
    ])
    def test_bad_input_exit_2(self, jrnl, url, capsys, argv, message):
        rc, out, err = run(capsys, 'report', '--connection', url,
                           '--no-nova', *argv)
        assert rc == 2
        assert message in err and err.startswith('nova-ha report: ')
        assert out == ''

    def test_bad_connection_exit_2(self, capsys):
        rc, _, err = run(capsys, 'report', '--connection', 'nosuchdb://x',
                         '--no-nova')
        assert rc == 2 and '[journal] connection' in err

    def test_unwritable_chart_exit_1(self, jrnl, url, tmp_path, capsys):
        rc, _, err = run(capsys, 'report', '--connection', url, '--no-nova',
                         '--chart', str(tmp_path / 'nodir' / 'x.svg'))
        assert rc == 1 and 'cannot write' in err

    def test_nova_unavailable_falls_back_to_uuids(self, jrnl, url, capsys):
        rc, out, err = run(capsys, 'report', '--connection', url)
        assert rc == 0
        assert 'server group names unavailable, showing UUIDs' in err
        assert section(out, 'server groups')[1][0] == G1

    def test_help_explains_columns(self, capsys):
        with pytest.raises(SystemExit) as e:
            cli.build_parser().parse_args(['report', '--help'])
        assert e.value.code == 0
        out = capsys.readouterr().out
        for col in ('DOWNTIME', 'TTR', 'FENCING', 'DETECTION', 'EVACUATION',
                    'SAL_OK', 'Exit codes'):
            assert col in out
