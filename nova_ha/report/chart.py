"""Timeline chart of recoveries: SVG or PNG (matplotlib, Agg backend).

One row per instance, rows grouped by server group (a shaded heading row
per group). Recoveries last seconds and may be hours apart, so each
recovery gets its own panel (up to ``MAX_PANELS``; more share one axis),
side by side, each with its own UTC time axis. An outage is a bar of its
phases:

* detection  failure (last heartbeat) -> detected   (only when known)
* fencing    detected -> power-off confirmed
* preparing  fenced -> evacuate requested (force-down, listing, queueing)
* evacuating evacuate requested -> ACTIVE on the new host
* not recovered (hatched): from the last known time to when nova-ha gave
  up on the instance (error, no valid host, skipped), or to the end of the
  period while it is still being recovered.

The output is deterministic for a given report: SVG ids are salted with
a constant, no creation date is written, and text stays text
(``svg.fonttype = none``), so instance names can be searched in the file.
"""

import datetime

from nova_ha.report import collect
from nova_ha.report import render

EXTENSIONS = ('.svg', '.png')

PHASES = (
    # name, colour, start attribute, end attribute
    ('detection', '#9e9e9e', 'failure_at', 'detected_at'),
    ('fencing', '#d62728', 'detected_at', 'fenced_at'),
    ('preparing', '#ff7f0e', 'fenced_at', 'evacuate_at'),
    ('evacuating', '#1f77b4', 'evacuate_at', 'active_at'),
)
UNRECOVERED = ('not recovered', '#ffffff')


def chart_format(path):
    """'svg' or 'png' from the extension; ReportError otherwise."""
    lower = str(path).lower()
    for ext in EXTENSIONS:
        if lower.endswith(ext):
            return ext[1:]
    raise collect.ReportError(
        '--chart %r: the file name must end in .svg or .png' % str(path))


def _naive(at):
    return at.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def _segments(outage, end_of_chart):
    """[(phase, colour, start, end, hatched)] of one outage."""
    segs = []
    last = outage.detected_at
    for name, colour, a, b in PHASES:
        if name == 'detection' and outage.failure_source != \
                collect.FAILURE_STEP:
            continue
        start, end = getattr(outage, a), getattr(outage, b)
        if name == 'evacuating' and not outage.recovered:
            end = None
        if start is None or end is None:
            continue
        if end > start:
            segs.append((name, colour, start, end, False))
        last = max(last, end)
    if not outage.recovered:
        if outage.evacuate_at is not None:
            last = max(last, outage.evacuate_at)
        end = outage.finished_at or end_of_chart
        segs.append((UNRECOVERED[0], UNRECOVERED[1], last,
                     max(end, last), True))
    return segs


def _extent(outages, end_of_chart):
    times = [t for o in outages
             for seg in _segments(o, end_of_chart) for t in seg[2:4]]
    times += [o.failure_at for o in outages]
    return min(times), max(times)


def rows_of(report):
    """[(label, is_group_heading, [outages])] in chart order (top first)."""
    rows = []
    for group in report.groups:
        rows.append((render.group_label(group.server_group,
                                        group.group_name), True, []))
        for inst in report.instances:
            if inst.server_group != group.server_group:
                continue
            rows.append((inst.label, False,
                         [o for o in report.outages
                          if o.instance_uuid == inst.key
                          and o.server_group == group.server_group]))
    return rows


MAX_PANELS = 6


def panels_of(report):
    """[(title, [outages])]: one panel per recovery (oldest first), or a
    single panel when there are more than MAX_PANELS recoveries."""
    by_rec = {}
    for o in report.outages:
        by_rec.setdefault(o.recovery_id, []).append(o)
    if not by_rec:
        return [('', [])]
    if len(by_rec) > MAX_PANELS:
        return [('%d recoveries' % len(by_rec), list(report.outages))]
    return [('recovery %d: %s\n%s' % (rid, outs[0].host,
                                      render.t(outs[0].detected_at)), outs)
            for rid, outs in sorted(by_rec.items(),
                                    key=lambda kv: kv[1][0].detected_at)]


def write_chart(report, path, width=10.0):
    """Write the timeline of ``report`` to ``path`` (.svg or .png)."""
    fmt = chart_format(path)
    import matplotlib
    matplotlib.use('Agg', force=True)
    from matplotlib import dates as mdates
    from matplotlib import patches
    from matplotlib import pyplot as plt

    rows = rows_of(report)
    panels = panels_of(report)
    end_of_chart = min(report.until, report.generated_at)
    height = 2.3 + 0.35 * max(len(rows), 1)
    with matplotlib.rc_context({'svg.hashsalt': 'nova-ha-report',
                                'svg.fonttype': 'none',
                                'font.size': 9}):
        fig, axes = plt.subplots(
            1, len(panels), sharey=True, squeeze=False,
            figsize=(max(width, 2.0 + 2.6 * len(panels)), height))
        try:
            for ax, (title, outages) in zip(axes[0], panels):
                _panel(ax, rows, outages, end_of_chart, report, mdates)
                ax.set_title(title, fontsize=8)
            ax0 = axes[0][0]
            ax0.set_yticks(range(len(rows)))
            ax0.set_yticklabels([label for label, _, _ in rows])
            for tick, (_, heading, _) in zip(ax0.get_yticklabels(), rows):
                if heading:
                    tick.set_fontweight('bold')
            ax0.set_ylim(len(rows) - 0.5 if rows else 0.5, -0.5)
            fig.suptitle('nova-ha recoveries %s (UTC): %d outage(s), %d '
                         'recovered' % (render.period(report),
                                        report.overall.outages,
                                        report.overall.recovered))
            if not report.outages:
                ax0.text(0.5, 0.5, 'no recoveries in the period',
                         transform=ax0.transAxes, ha='center', va='center')
            handles = [patches.Patch(color=c, label=n)
                       for n, c, _, _ in PHASES
                       if n != 'detection' or any(
                           o.failure_source == collect.FAILURE_STEP
                           for o in report.outages)]
            handles.append(patches.Patch(facecolor=UNRECOVERED[1],
                                         edgecolor='#444444', hatch='//',
                                         label=UNRECOVERED[0]))
            fig.legend(handles=handles, loc='lower center',
                       ncol=len(handles), frameon=False)
            # bottom: 0.3 in for the legend, 0.25 in for the axis label
            fig.supxlabel('time (UTC)', y=0.3 / height, va='bottom',
                          fontsize=9)
            fig.tight_layout(rect=(0, 0.6 / height, 1, 1))
            metadata = ({'Date': None, 'Creator': 'nova-ha report'}
                        if fmt == 'svg' else {'Software': 'nova-ha report'})
            fig.savefig(path, format=fmt, metadata=metadata, dpi=100)
        finally:
            plt.close(fig)
    return path


def _panel(ax, rows, outages, end_of_chart, report, mdates):
    ids = {id(o) for o in outages}
    for y, (label, heading, row_outages) in enumerate(rows):
        if heading:
            ax.axhspan(y - 0.5, y + 0.5, color='#eeeeee', zorder=0)
            continue
        for o in row_outages:
            if id(o) not in ids:
                continue
            for name, colour, a, b, hatched in _segments(o, end_of_chart):
                start = mdates.date2num(_naive(a))
                ax.barh(y, mdates.date2num(_naive(b)) - start, left=start,
                        height=0.6, color=colour,
                        edgecolor='#444444' if hatched else colour,
                        hatch='//' if hatched else None, linewidth=0.5,
                        zorder=2)
    if outages:
        lo, hi = _extent(outages, end_of_chart)
    else:
        hi = report.until
        lo = report.since or hi - datetime.timedelta(hours=1)
    pad = datetime.timedelta(seconds=max((hi - lo).total_seconds(), 1.0)
                             * 0.06)
    ax.set_xlim(mdates.date2num(_naive(lo - pad)),
                mdates.date2num(_naive(hi + pad)))
    span = hi - lo + 2 * pad
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=2,
                                                      maxticks=4))
    ax.xaxis.set_major_formatter(mdates.DateFormatter(
        '%H:%M:%S' if span <= datetime.timedelta(days=1)
        else '%m-%d %H:%M'))
    for tick in ax.get_xticklabels():
        tick.set_fontsize(7)
    ax.grid(axis='x', linestyle=':', linewidth=0.5, zorder=1)
