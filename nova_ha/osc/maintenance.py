"""``openstack ha maintenance start|status|abort|complete``: host drain
through the same actions as ``nova-ha maintenance`` (doc/maintenance.md)."""

from osc_lib.command import command

from nova_ha.journal import cli as journal_cli
from nova_ha.maintenance import cli as maint_cli
from nova_ha.osc import common

M = maint_cli
J = journal_cli

_RECORD = ('Fields: Host, Drain (ID), State (draining, aborting, ready, '
           'incomplete, aborted, completed), Reason, Started, Started By, '
           'Power Off, Powered Off By Nova Ha, Finished, Detail, and the '
           'number of instances Moved, Moving, Waiting and Blocked.')


class _MaintenanceCommand(common.HACommand):
    error_mappers = (M.error_of, J.error_of)

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='compute host (its nova-compute service '
                                 'host name)')
        return parser

    def show(self, eng, drain):
        record = M.drain_record(eng, drain)
        return tuple(record), tuple(record.values())

    def follow(self, eng, drain):
        """Drive `drain` to its end, progress on stderr; sets the exit
        code and prints the final line (stderr) as nova-ha does."""
        drain = M.follow(eng, drain, on_pass=M.Progress(
            eng, out=self.app.stderr))
        return self.finish(drain)

    def finish(self, drain):
        self.exit_code, line = M.outcome(drain)
        self.app.stderr.write(line + '\n')
        return drain


class StartMaintenance(_MaintenanceCommand, command.ShowOne):
    """Disable a compute host and move every instance off it, within each
    VNF's limits (server group policy, ha: flavor extra specs).

    Needs Nova: nova-ha.conf's [nova] credentials. Prints the new drain.
    """

    exit_detail = (_RECORD + ' With --wait: exit 0 once the host is '
                   'ready (empty), 1 if the drain ended incomplete, a power '
                   'step failed or [maintenance] wait_timeout passed. An '
                   'unknown host or a host already draining: exit 2.')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--reason', metavar='<text>', default=None,
                            help='why (shown in the service\'s disabled '
                                 'reason)')
        parser.add_argument('--power-off', action='store_true',
                            help='power the host off (fencing driver) '
                                 'once it is empty')
        parser.add_argument('--wait', action='store_true',
                            help='follow the drain until it ends, printing '
                                 'progress on stderr, then print it')
        return parser

    def take_action(self, parsed_args):
        eng = self.ha.maintenance_engine()
        drain = M.start(eng, parsed_args.host, reason=parsed_args.reason,
                        power_off=parsed_args.power_off)
        if parsed_args.wait:
            drain = self.follow(eng, drain)
        return self.show(eng, drain)


class AbortMaintenance(_MaintenanceCommand, command.ShowOne):
    """Abort a host's drain: start no new move; moves in flight finish;
    the host stays disabled (end with "openstack ha maintenance
    complete").
    """

    exit_detail = (_RECORD + ' Exit 0 once aborted; 1 if --wait timed '
                   'out; a host with no active drain: exit 2.')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--no-wait', action='store_true',
                            help='return at once instead of waiting for '
                                 'the moves in flight')
        return parser

    def take_action(self, parsed_args):
        eng = self.ha.maintenance_engine()
        drain = M.abort(eng, parsed_args.host)
        if drain.state == 'aborted':
            drain = self.finish(drain)
        elif not parsed_args.no_wait:
            drain = self.follow(eng, drain)
        return self.show(eng, drain)


class CompleteMaintenance(_MaintenanceCommand, command.ShowOne):
    """End a host's maintenance: power it on (if nova-ha powered it off)
    and enable its nova-compute service again.

    Needs Nova: nova-ha.conf's [nova] credentials.
    """

    exit_detail = (_RECORD + ' A host with no drain to complete: exit 2; '
                   'a failed power-on: exit 1.')

    def take_action(self, parsed_args):
        eng = self.ha.maintenance_engine()
        return self.show(eng, M.complete(eng, parsed_args.host))


class StatusMaintenance(_MaintenanceCommand, command.Lister):
    """List drains: every active one, or the latest drain of <host>; with
    --instances, that drain's instances and where each one went.
    """

    exit_detail = ('Drain columns: ' + _RECORD[len('Fields: '):]
                   + ' Instance columns: Instance, Name, State (moved, '
                   'moving, waiting, blocked), Method, Group, Dest, Tries, '
                   'Reason. A host with no drain lists nothing (exit 0).')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        # <host> is optional here
        for action in parser._actions:
            if action.dest == 'host':
                action.nargs = '?'
                action.help = ('compute host (default: every active '
                               'drain)')
        parser.add_argument('--instances', action='store_true',
                            help='list the instances of <host>\'s latest '
                                 'drain instead')
        return parser

    def take_action(self, parsed_args):
        if parsed_args.instances and not parsed_args.host:
            raise J.CommandError('--instances needs a <host>', 2)
        eng = self.ha.maintenance_engine()
        drains = M.drains(eng, parsed_args.host)
        if parsed_args.instances:
            items = M.drain_items(eng, drains[0]) if drains else []
            return (J.labels(M.ITEM_COLUMNS),
                    [J.data_row(M.ITEM_COLUMNS, i) for i in items])
        return M.drain_labels(), [tuple(M.drain_record(eng, d).values())
                                  for d in drains]
