/**
 * Charts of the time series (uPlot, bundled; it draws on a canvas and styles through
 * the CSSOM, which the CSP allows): clicks, signups and purchases per day or week, and
 * revenue per currency. The legend is ours, below the plot: each series with its total
 * over the range, always visible, and the values of the day or week under the cursor
 * while hovering.
 */
import uPlot from 'uplot';
import { el } from './dom.ts';
import { addDays, daySeconds, formatCount, formatMajor, formatMoney, minorDigits } from './format.ts';
import type { Timeseries, TimeseriesPoint } from './types.ts';

const HEIGHT = 280;
/** Longest range filled day by day; a longer one is drawn from the points as given. */
const MAX_FILLED_DAYS = 3700;
/** Room a week label needs on the x axis, in CSS pixels. */
const WEEK_LABEL_PX = 110;
const AXIS = { stroke: '#64748b', grid: { stroke: '#eef1f5', width: 1 }, ticks: { stroke: '#e2e8f0', width: 1 } };
/** Whole-number steps only: these are counts. */
const COUNT_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8];
const CURRENCY_COLORS = ['#7c3aed', '#0891b2', '#db2777', '#65a30d', '#ca8a04', '#475569'];

const shortDay = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' });
const longDay = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });

/** "Week of 3 Mar" (weeks start on Monday, as the API buckets them). */
export const weekLabel = (seconds: number, long = false): string =>
  `Week of ${(long ? longDay : shortDay).format(new Date(seconds * 1000))}`;

/** One line of a chart: its values per bucket and how to show them. */
export interface ChartSeries {
  key: string;
  label: string;
  color: string;
  /** The plotted value of a bucket. */
  plot: (point: TimeseriesPoint | undefined) => number;
  /** The legend's value of a bucket (the raw figure, e.g. minor units). */
  raw: (point: TimeseriesPoint | undefined) => number;
  /** Formats a raw figure. */
  format: (raw: number) => string;
}

export const COUNT_SERIES: ChartSeries[] = (
  [
    ['clicks', 'Clicks', '#2563eb'],
    ['signups', 'Signups', '#16a34a'],
    ['purchases', 'Purchases', '#ea580c'],
  ] as const
).map(([key, label, color]) => ({
  key,
  label,
  color,
  plot: (point) => point?.[key] ?? 0,
  raw: (point) => point?.[key] ?? 0,
  format: formatCount,
}));

/** One revenue line per currency seen in the range, plotted in major units. */
export function revenueSeries(series: Timeseries): ChartSeries[] {
  const currencies = [...new Set(series.points.flatMap((point) => Object.keys(point.revenue)))].sort();
  return currencies.map((currency, index) => ({
    key: `revenue-${currency}`,
    label: `Revenue (${currency})`,
    color: CURRENCY_COLORS[index % CURRENCY_COLORS.length] as string,
    plot: (point) => (point?.revenue[currency] ?? 0) / 10 ** minorDigits(currency),
    raw: (point) => point?.revenue[currency] ?? 0,
    format: (raw) => formatMoney(raw, currency),
  }));
}

/** The buckets to draw: every day of a daily range (missing days count as zero), else the points as given. */
export function bucketsOf(series: Timeseries): string[] {
  let dates = series.points.map((point) => point.date).sort();
  if (series.interval === 'day' && series.from && series.to) {
    const filled: string[] = [];
    for (let day = series.from; day <= series.to && filled.length < MAX_FILLED_DAYS; day = addDays(day, 1)) filled.push(day);
    if (filled.length < MAX_FILLED_DAYS) dates = filled;
  }
  return dates;
}

/** The y axis: counts (whole steps from 0), or money in major units (of one currency, or of several: plain numbers). */
export type ChartAxis = { counts: true } | { money: string | null };

export interface Chart {
  /** Draws these series of the time series. */
  draw: (series: Timeseries, lines: ChartSeries[], axis?: ChartAxis) => void;
  destroy: () => void;
}

const axisFormat = (axis: ChartAxis) =>
  'counts' in axis ? formatCount : (value: number) => (axis.money ? formatMajor(value, axis.money) : formatCount(value));

export function createChart(container: HTMLElement, legendHost: HTMLElement, name: string): Chart {
  let plot: uPlot | null = null;
  const width = () => Math.max(280, Math.floor(container.clientWidth || 800));
  const resize = new ResizeObserver(() => {
    if (plot && container.clientWidth > 0) plot.setSize({ width: width(), height: HEIGHT });
  });
  resize.observe(container);

  /** Our legend: a row per series, with the range's total until the cursor picks a bucket. */
  function legend(series: Timeseries, lines: ChartSeries[], dates: string[], byDate: Map<string, TimeseriesPoint>) {
    const title = el('div', { class: 'legend-title', 'data-testid': `${name}-legend-title` });
    const values = lines.map((line) => {
      const total = dates.reduce((sum, date) => sum + line.raw(byDate.get(date)), 0);
      const value = el('span', { class: 'legend-value', 'data-testid': `${name}-legend-value` });
      const item = el('div', { class: 'legend-item', 'data-testid': `${name}-legend-${line.key}`, 'data-series': line.key }, [
        el('span', { class: 'legend-marker', 'aria-hidden': 'true' }),
        el('span', { class: 'legend-label' }, line.label),
        value,
      ]);
      // The marker's colour is data: set through the CSSOM (the CSP allows it, not a style attribute).
      (item.firstChild as HTMLElement).style.background = line.color;
      return { line, total, value, item };
    });
    const range =
      series.from && series.to
        ? `${longDay.format(new Date(`${series.from}T00:00:00Z`))} – ${longDay.format(new Date(`${series.to}T00:00:00Z`))}`
        : '';
    const show = (index: number | null | undefined) => {
      const date = index == null ? undefined : dates[index];
      title.textContent = date
        ? series.interval === 'week'
          ? weekLabel(daySeconds(date), true)
          : longDay.format(new Date(`${date}T00:00:00Z`))
        : `Total${range ? `, ${range}` : ''}`;
      for (const { line, total, value } of values) {
        const raw = date ? line.raw(byDate.get(date)) : total;
        value.textContent = line.format(raw);
        value.dataset.value = String(raw);
      }
    };
    show(null);
    legendHost.replaceChildren(
      title,
      el(
        'div',
        { class: 'legend-items' },
        values.map((v) => v.item),
      ),
    );
    return show;
  }

  function options(
    interval: Timeseries['interval'],
    lines: ChartSeries[],
    points: number,
    axis: ChartAxis,
    onCursor: (index: number | null | undefined) => void,
  ): uPlot.Options {
    // Dots only while there are few enough to read; a long range is a plain line.
    const dots = points <= 16;
    const weekly = interval === 'week';
    const xAxis: uPlot.Axis = weekly
      ? {
          ...AXIS,
          // A label per week while they fit, every other (or fewer) when they do not.
          splits: (u) => {
            const xs = (u.data[0] ?? []) as number[];
            const fit = Math.max(1, Math.floor(width() / WEEK_LABEL_PX));
            const step = Math.max(1, Math.ceil(xs.length / fit));
            return xs.filter((_, index) => index % step === 0);
          },
          values: (_u, splits) => splits.map((seconds) => weekLabel(seconds)),
        }
      : { ...AXIS };
    return {
      width: width(),
      height: HEIGHT,
      // The API's days are UTC days: label them as such, whatever the browser's zone.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      cursor: { drag: { x: false, y: false } },
      legend: { show: false },
      // Room on the right for the last week's label, which sits on the plot's edge.
      ...(weekly ? { padding: [12, 56, 0, 0] as uPlot.Padding } : {}),
      scales: {
        x: { time: true },
        y: {
          // From zero (below it only for a day of refunds), with some room above the highest point.
          range: (_u, min, max) => {
            const counts = 'counts' in axis;
            const top = Math.max(counts ? 4 : 1, (max ?? 0) * 1.15);
            return [Math.min(0, (min ?? 0) * 1.15), counts ? Math.ceil(top) : top];
          },
        },
      },
      axes: [
        xAxis,
        {
          ...AXIS,
          size: 72,
          ...('counts' in axis ? { incrs: COUNT_STEPS } : {}),
          values: (_u, splits) => splits.map(axisFormat(axis)),
        },
      ],
      series: [
        {},
        ...lines.map((line, index) => ({
          label: line.label,
          stroke: line.color,
          width: 2,
          // Only the first measure is shaded, so the areas never muddy each other.
          ...(index === 0 ? { fill: `${line.color}12` } : {}),
          points: { show: dots, size: 6 },
        })),
      ],
      hooks: { setCursor: [(u: uPlot) => onCursor(u.cursor.idx)] },
    };
  }

  return {
    draw(series, lines, axis = { counts: true }) {
      plot?.destroy();
      plot = null;
      const dates = bucketsOf(series);
      const byDate = new Map(series.points.map((point) => [point.date, point]));
      // Nothing to draw (no revenue in the range): no plot, no legend; the caller says so.
      if (!lines.length) {
        legendHost.replaceChildren();
        return;
      }
      const show = legend(series, lines, dates, byDate);
      const columns: uPlot.AlignedData = [dates.map(daySeconds), ...lines.map((line) => dates.map((date) => line.plot(byDate.get(date))))];
      plot = new uPlot(options(series.interval, lines, dates.length, axis, show), columns, container);
    },
    destroy() {
      plot?.destroy();
      plot = null;
      legendHost.replaceChildren();
    },
  };
}
