/** Status badges, coloured by what the status means. */
import { type DecisionWeight, decisionWeight } from '../../shared/decisions.ts';
import { el } from './dom.ts';
import type { Decision } from './types.ts';

const TONES: Record<string, string> = {
  attributed: 'green',
  accepted: 'green',
  approved: 'blue',
  created: 'blue',
  paid: 'green',
  failed: 'red',
  held: 'amber',
  pending: 'amber',
  rejected: 'red',
  revoked: 'red',
};

export const toneOf = (status: string): string => TONES[status] ?? 'gray';

export function badge(text: string, tone = toneOf(text)): HTMLElement {
  return el('span', { class: `badge badge-${tone}` }, text);
}

/** A decision's badge by what it weighs (shared/decisions.ts): red only for refusals worth a look. */
const DECISION_BADGES: Record<DecisionWeight, { tone: string; title: string }> = {
  accepted: { tone: 'green', title: 'A referral was made' },
  info: { tone: 'gray', title: 'Working as designed: nothing to do' },
  held: { tone: 'amber', title: 'Waiting for review' },
  problem: { tone: 'red', title: 'Refused: worth a look' },
};

export function decisionBadge(decision: Pick<Decision, 'reason' | 'outcome'>): HTMLElement {
  const weight = decisionWeight(decision.reason, decision.outcome);
  const { tone, title } = DECISION_BADGES[weight];
  // An informational "rejected" (a repeat purchase keeping its first referrer) reads "info".
  const text = weight === 'info' ? 'info' : decision.outcome;
  const node = badge(text, tone);
  node.title = `${title} (outcome: ${decision.outcome})`;
  node.dataset.weight = weight;
  return node;
}
