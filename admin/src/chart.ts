/**
 * The activity chart: clicks, signups and purchases per day or week (uPlot,
 * bundled; it draws on a canvas and styles through the CSSOM, which the CSP allows).
 */
import uPlot from 'uplot';
import { addDays, daySeconds, formatCount } from './format.ts';
import type { Timeseries } from './types.ts';

const HEIGHT = 300;
/** Longest range filled day by day; a longer one is drawn from the points as given. */
const MAX_FILLED_DAYS = 3700;
const AXIS = { stroke: '#64748b', grid: { stroke: '#eef1f5', width: 1 }, ticks: { stroke: '#e2e8f0', width: 1 } };
/** Whole-number steps only: these are counts. */
const COUNT_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8];

export const SERIES = [
  { key: 'clicks', label: 'Clicks', color: '#2563eb' },
  { key: 'signups', label: 'Signups', color: '#16a34a' },
  { key: 'purchases', label: 'Purchases', color: '#ea580c' },
] as const;

/** Columns for uPlot: x in Unix seconds, then one array per series. Missing days count as zero. */
export function toColumns(series: Timeseries): [number[], number[], number[], number[]] {
  const byDate = new Map(series.points.map((point) => [point.date, point]));
  let dates = series.points.map((point) => point.date).sort();
  if (series.interval === 'day' && series.from && series.to) {
    const filled: string[] = [];
    for (let day = series.from; day <= series.to && filled.length < MAX_FILLED_DAYS; day = addDays(day, 1)) filled.push(day);
    if (filled.length < MAX_FILLED_DAYS) dates = filled;
  }
  const column = (key: 'clicks' | 'signups' | 'purchases') => dates.map((date) => byDate.get(date)?.[key] ?? 0);
  return [dates.map(daySeconds), column('clicks'), column('signups'), column('purchases')];
}

export interface Chart {
  draw: (series: Timeseries) => void;
  destroy: () => void;
}

export function createChart(container: HTMLElement): Chart {
  let plot: uPlot | null = null;
  const width = () => Math.max(320, Math.floor(container.clientWidth || 800));
  const resize = new ResizeObserver(() => {
    if (plot && container.clientWidth > 0) plot.setSize({ width: width(), height: HEIGHT });
  });
  resize.observe(container);

  function options(interval: Timeseries['interval'], points: number): uPlot.Options {
    // Dots only while there are few enough to read; a long range is a plain line.
    const dots = points <= 16;
    return {
      width: width(),
      height: HEIGHT,
      // The API's days are UTC days: label them as such, whatever the browser's zone.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      scales: {
        x: { time: true },
        y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil((max ?? 0) * 1.15))] },
      },
      axes: [{ ...AXIS }, { ...AXIS, size: 56, incrs: COUNT_STEPS, values: (_u, splits) => splits.map((value) => formatCount(value)) }],
      series: [
        {
          label: interval === 'week' ? 'Week of' : 'Day',
          value: (_u, value) => (value == null ? '—' : new Date(value * 1000).toISOString().slice(0, 10)),
        },
        ...SERIES.map((s, index) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          // Only the first (largest) measure is shaded, so the areas never muddy each other.
          ...(index === 0 ? { fill: `${s.color}12` } : {}),
          points: { show: dots, size: 6 },
          value: (_u: uPlot, value: number | null) => (value == null ? '—' : formatCount(value)),
        })),
      ],
    };
  }

  return {
    draw(series) {
      plot?.destroy();
      const columns = toColumns(series);
      plot = new uPlot(options(series.interval, columns[0].length), columns, container);
    },
    destroy() {
      plot?.destroy();
      plot = null;
    },
  };
}
