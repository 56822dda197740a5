"""The HTML report's plots, drawn with matplotlib as PNG images.

matplotlib comes with the ``lab`` extra.  It is imported only when a plot
is drawn, so that neither the plugin nor ``migration-lab flags`` load it;
``available()`` says whether it can be.  Each function takes the figures
the report has already picked out and returns the PNG's bytes.
"""

import io

DPI = 110
WIDTH_IN = 8.6
# One colour per storage mode, in the matrix's order (more than enough).
PALETTE = ('#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2')
MODE_COLOURS = ('#1565c0', '#ef6c00')    # NON_SHARED_INC, NON_SHARED_DISK


def available():
    """Can the plots be drawn here (is matplotlib installed)?"""
    try:
        _figure(1, 1)
    except ImportError:
        return False
    return True


def _figure(width, height):
    from matplotlib.backends import backend_agg
    from matplotlib import figure

    fig = figure.Figure(figsize=(width, height), dpi=DPI)
    backend_agg.FigureCanvasAgg(fig)
    return fig


def _png(fig):
    out = io.BytesIO()
    # No Software tag: the same results give the same bytes.
    fig.savefig(out, format='png', dpi=DPI, metadata={'Software': None})
    return out.getvalue()


def _style(ax, grid_axis):
    for side in ('top', 'right'):
        ax.spines[side].set_visible(False)
    ax.grid(axis=grid_axis, color='#dddddd', linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=9)


def _spread(values, centre, width):
    """x positions for a column of dots: side by side around `centre`
    (a fixed spread, not random jitter)."""
    if len(values) == 1:
        return [centre]
    step = width / (len(values) - 1)
    return [centre - width / 2 + n * step for n in range(len(values))]


def disk_copied(groups, modes):
    """Strip plot of MiB copied per case: `groups` is
    [(storage, {mode: [MiB, ...]})], `modes` [(mode, label)]."""
    fig = _figure(WIDTH_IN, 3.8)
    ax = fig.add_subplot()
    offset = 0.36 / max(len(modes) - 1, 1)
    for i, (storage, by_mode) in enumerate(groups):
        for j, (mode, label) in enumerate(modes):
            values = sorted(by_mode.get(mode, []))
            if not values:
                continue
            x = i - 0.18 + j * offset if len(modes) > 1 else i
            colour = MODE_COLOURS[j % len(MODE_COLOURS)]
            ax.scatter(_spread(values, x, 0.1), values, s=26, color=colour,
                       alpha=0.85, zorder=3,
                       label=label if i == _first(groups, mode) else None)
            median = values[len(values) // 2]
            ax.hlines(median, x - 0.09, x + 0.09, color=colour,
                      linewidth=2, zorder=4)
            ax.annotate('%.1f' % median, (x + 0.1, median), fontsize=8,
                        va='center', color=colour)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylim(bottom=0)
    ax.set_ylabel('MiB copied per case', fontsize=9)
    _style(ax, 'y')
    ax.legend(fontsize=8, loc='upper left', frameon=False,
              bbox_to_anchor=(0, 1.14), ncol=len(modes))
    fig.tight_layout()
    return _png(fig)


def _first(groups, mode):
    return next(i for i, (_, by_mode) in enumerate(groups)
                if by_mode.get(mode))


def migration_time(rows, storages, plain=None):
    """One line per flag set, a dot per case at its migration seconds,
    coloured by storage: `rows` is [(flag set, [(storage, s), ...])]; a
    dashed line under the first `plain` rows (the fault cases follow)."""
    fig = _figure(WIDTH_IN, 0.26 * len(rows) + 1.1)
    ax = fig.add_subplot()
    labelled = set()
    step = 0.5 / len(storages)     # each storage its own lane in a row
    for y, (_, cases) in enumerate(rows):
        for storage, seconds in cases:
            lane = storages.index(storage)
            colour = PALETTE[lane % len(PALETTE)]
            ax.scatter([seconds], [y + (lane - (len(storages) - 1) / 2) *
                                   step], s=24, color=colour, alpha=0.85,
                       zorder=3,
                       label=None if storage in labelled else storage)
            labelled.add(storage)
    if plain and plain < len(rows):
        ax.axhline(plain - 0.5, color='#757575', linestyle='--',
                   linewidth=1)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, max(s for _, cases in rows for _, s in cases) * 1.05)
    ax.set_xlabel('migration seconds', fontsize=9)
    _style(ax, 'both')
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda n: storages.index(
        labels[n]))
    ax.legend([handles[n] for n in order], [labels[n] for n in order],
              fontsize=8, frameon=False, loc='lower left',
              bbox_to_anchor=(0, 1), ncol=len(labels))
    fig.tight_layout()
    return _png(fig)


def lost_writes(bars):
    """One bar per case the oracle judged DATA-LOSS: `bars` is
    [(label, lost writes, corrupt blocks)]."""
    fig = _figure(WIDTH_IN, 0.32 * len(bars) + 1.0)
    ax = fig.add_subplot()
    values = [b[1] for b in bars]
    ax.barh(range(len(bars)), values, color='#c62828', height=0.6,
            zorder=3)
    top = max(values + [1])
    for y, (_, lost, corrupt) in enumerate(bars):
        text = str(lost) + (' (%d corrupt)' % corrupt if corrupt else '')
        ax.annotate(text, (lost + top * 0.01, y), fontsize=8, va='center')
    ax.set_yticks(range(len(bars)), [b[0] for b in bars])
    ax.set_ylim(len(bars) - 0.5, -0.5)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel('acknowledged writes lost', fontsize=9)
    _style(ax, 'x')
    fig.tight_layout()
    return _png(fig)
