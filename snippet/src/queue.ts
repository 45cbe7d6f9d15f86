/**
 * Delivery. Every send is a fetch with keepalive (it survives the page unloading)
 * whose body is a JSON string, which the browser sends as `text/plain`: a simple
 * request, no CORS preflight. A send that may succeed later (network error, 5xx,
 * 429) waits in a bounded localStorage queue (at most QUEUE_MAX sends, none older
 * than QUEUE_MAX_AGE_MS) and is retried with backoff on later page loads and when
 * the browser is back online. A retry resends the same body, so an event's eventId
 * lets the collector store it once. Other 4xx answers are final: dropped.
 */
import { QUEUE_KEY, QUEUE_MAX, QUEUE_MAX_AGE_MS, RETRY_BASE_MS } from './config.ts';

/** A queued send: url, body, first attempt and next attempt due (ms since the epoch). */
export type PendingSend = [url: string | URL, body: string, created: number, due: number];

/**
 * Rewrites the stored queue through `change`, keeping the newest QUEUE_MAX sends;
 * returns what it held before, less the sends past QUEUE_MAX_AGE_MS (dropped here).
 */
export function updateQueue(change: (sends: PendingSend[]) => PendingSend[]): PendingSend[] {
  let sends: PendingSend[] = [];
  try {
    sends = JSON.parse(localStorage[QUEUE_KEY] || '[]').filter((send: PendingSend) => send[2] > Date.now() - QUEUE_MAX_AGE_MS);
  } catch {} // unreadable: start over, so the write below repairs it
  try {
    localStorage[QUEUE_KEY] = JSON.stringify(change(sends).slice(-QUEUE_MAX));
  } catch {}
  return sends;
}

/**
 * POSTs `body` to `url`; a retryable failure is queued. Backoff without an attempt
 * counter: the next try waits as long again as the send has already waited (plus
 * RETRY_BASE_MS), so the waits roughly double.
 */
export function deliver(url: string | URL, body: string, created = Date.now()): void {
  fetch(url, { method: 'POST', body, keepalive: true })
    .then(({ status }) => status < 500 && status != 429, () => false)
    .then((done) => done || updateQueue((sends) => [...sends, [url, body, created, 2 * Date.now() - created + RETRY_BASE_MS]]));
}

/** Retries every queued send that is due; the others stay queued. */
export function flushQueue(): void {
  const now = Date.now();
  for (const send of updateQueue((sends) => sends.filter((send) => send[3] > now))) {
    if (send[3] <= now) deliver(send[0], send[1], send[2]);
  }
}
