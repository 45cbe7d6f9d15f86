/** Status badges, coloured by what the status means. */
import { el } from './dom.ts';

const TONES: Record<string, string> = {
  attributed: 'green',
  accepted: 'green',
  approved: 'blue',
  paid: 'green',
  held: 'amber',
  pending: 'amber',
  rejected: 'red',
  revoked: 'red',
};

export const toneOf = (status: string): string => TONES[status] ?? 'gray';

export function badge(text: string, tone = toneOf(text)): HTMLElement {
  return el('span', { class: `badge badge-${tone}` }, text);
}
