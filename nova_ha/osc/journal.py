"""``openstack ha host|alarm|recovery ...``: the journal's views (the same
queries and columns as ``nova-ha host|alarm|recovery ...``)."""

from osc_lib.cli import format_columns
from osc_lib.command import command

from nova_ha.evacuator import cli as evacuator_cli
from nova_ha.journal import cli as journal_cli
from nova_ha.osc import common

J = journal_cli


class _JournalLister(common.HACommand, command.Lister):

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        J.add_connection_option(parser)
        return parser

    def query(self, j, parsed_args):
        raise NotImplementedError

    def take_action(self, parsed_args):
        j = self.ha.journal(parsed_args)
        try:
            objs = self.query(j, parsed_args)
        finally:
            j.close()
        return (J.labels(self.columns),
                [J.data_row(self.columns, o) for o in objs])


class ListHost(_JournalLister):
    """List every compute host's state in the nova-ha journal.

    States, as the evacuator records them: OK, SUSPECT, HOST_DOWN,
    SERVICE_DOWN, PARTITION, FENCING, FENCED, FENCE_FAILED, GUARDED,
    FORCED_DOWN, EVACUATING, RECOVERED, MAINTENANCE, DISABLED
    (doc/journal.md). Since is an ISO 8601 UTC time.
    """

    columns = evacuator_cli.HOST_COLUMNS

    def query(self, j, parsed_args):
        return evacuator_cli.list_hosts(j)


class ListAlarm(_JournalLister):
    """List the evacuator's alarms, newest first (active ones unless --all
    or --cleared).

    Time is ISO 8601 UTC; Status is active, acked or cleared.
    """

    columns = J.ALARM_COLUMNS

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        J.add_alarm_filters(parser)
        return parser

    def query(self, j, parsed_args):
        return J.query_alarms(j, parsed_args)


class ListRecovery(_JournalLister):
    """List host recoveries, newest first.

    Times are ISO 8601 UTC; Total is seconds from detection to the end.
    """

    columns = J.RECOVERY_COLUMNS

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        J.add_recovery_filters(parser)
        return parser

    def query(self, j, parsed_args):
        return J.query_recoveries(j, parsed_args)


class ShowRecovery(common.HACommand, command.ShowOne):
    """Show one host recovery: its times, per-step timeline, fencing
    attempts and each instance's outcome.

    Times are ISO 8601 UTC, durations seconds. Timeline entries: since_
    detected, at, step, duration, detail; instances: instance_uuid, name,
    sal, priority, server_group, state, attempts, dest_host, took,
    last_error.
    """

    exit_detail = 'An ID that is not in the journal: exit 1.'

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        J.add_connection_option(parser)
        parser.add_argument('id', type=int, metavar='<id>',
                            help='recovery ID (an integer; see '
                                 '"openstack ha recovery list")')
        return parser

    def take_action(self, parsed_args):
        j = self.ha.journal(parsed_args)
        try:
            record = J.recovery_record(*J.get_recovery(j, parsed_args.id))
        finally:
            j.close()
        for key in ('Timeline', 'Fencing Attempts', 'Instances'):
            record[key] = format_columns.ListDictColumn(record[key])
        return tuple(record), tuple(record.values())
