/**
 * The last 30 days as bars: per day a light bar for clicks, and over it, side by side,
 * the signups and purchases (each half the day's width, so they stay visible on a
 * phone). SVG with presentation attributes only, so it needs no inline style, and it
 * scales with the card's width through its viewBox.
 */
import type { PortalDayResponse } from '../../shared/responses.ts';
import { el, svg } from './dom.ts';
import { formatCount, formatDay } from './format.ts';

const WIDTH = 600;
const HEIGHT = 180;
/** Room above and below the plot, so the scale's labels line up with its top and zero lines. */
const TOP = 7;
const BOTTOM = 7;
const SERIES = [
  { key: 'clicks', label: 'Clicks', color: '#93b4f5' },
  { key: 'signups', label: 'Signups', color: '#16a34a' },
  { key: 'purchases', label: 'Purchases', color: '#ea580c' },
] as const;

/** A round top for the scale: 1, 2, 5, 10, 20, 50, … at or above `max` (at least 4). */
function niceMax(max: number): number {
  if (max <= 4) return 4;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

export function drawChart(container: HTMLElement, days: PortalDayResponse[]): void {
  const top = niceMax(Math.max(0, ...days.map((day) => Math.max(day.clicks, day.signups, day.purchases))));
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const slot = WIDTH / Math.max(1, days.length);
  const gap = Math.min(2, slot / 5);
  const y = (value: number) => TOP + plotHeight - (value / top) * plotHeight;

  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', preserveAspectRatio: 'none', class: 'chart-svg' });
  const total = (key: (typeof SERIES)[number]['key']) => days.reduce((sum, day) => sum + day[key], 0);
  const title = svg('title');
  title.textContent = `Last ${days.length} days: ${SERIES.map((s) => `${formatCount(total(s.key))} ${s.label.toLowerCase()}`).join(', ')}`;
  chart.append(title);

  for (const fraction of [0, 0.5, 1]) {
    const lineY = y(top * fraction);
    chart.append(svg('line', { x1: 0, x2: WIDTH, y1: lineY, y2: lineY, stroke: '#e5e9f0', 'stroke-width': 1 }));
  }
  days.forEach((day, index) => {
    const group = svg('g');
    const tip = svg('title');
    tip.textContent = `${formatDay(day.date)}: ${SERIES.map((s) => `${day[s.key]} ${s.label.toLowerCase()}`).join(', ')}`;
    group.append(tip);
    // The whole slot answers the pointer, so a day with nothing still shows its tooltip.
    group.append(svg('rect', { x: index * slot, y: TOP, width: slot, height: plotHeight, fill: 'transparent' }));
    const bar = (value: number, x: number, width: number, color: string) => {
      if (!value) return;
      const height = Math.max(2, TOP + plotHeight - y(value));
      group.append(svg('rect', { x, y: TOP + plotHeight - height, width, height, rx: 1, fill: color }));
    };
    const [clicks, signups, purchases] = SERIES;
    const left = index * slot + gap / 2;
    const width = slot - gap;
    bar(day.clicks, left, width, clicks.color);
    bar(day.signups, left, width / 2, signups.color);
    bar(day.purchases, left + width / 2, width / 2, purchases.color);
    chart.append(group);
  });

  const first = days[0];
  const last = days[days.length - 1];
  const axis = el('div', { class: 'chart-axis', 'aria-hidden': 'true' }, [
    el('span', {}, [first ? formatDay(first.date) : '']),
    el('span', {}, [last ? formatDay(last.date) : '']),
  ]);
  const scale = el('div', { class: 'chart-scale', 'aria-hidden': 'true' }, [el('span', {}, [formatCount(top)]), el('span', {}, ['0'])]);
  container.replaceChildren(el('div', { class: 'chart-body' }, [scale, chart as unknown as Node]), axis);
}
