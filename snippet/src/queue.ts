/**
 * Delivery: one send path for clicks, events and retries. Every send is a fetch
 * with keepalive (it survives the page unloading) whose body is a JSON string,
 * which the browser sends as `text/plain`: a simple request, no CORS preflight.
 *
 * Every send goes through the queue kept in localStorage: `flushQueue(send)` reads
 * the queue, adds the new send, posts what is due — the new send and any queued one
 * whose backoff has passed — and writes back the rest (at most QUEUE_MAX sends, none
 * older than QUEUE_MAX_AGE_MS). A send that may succeed later (network error, 5xx,
 * 429) comes back through `flushQueue` with its next due time; other 4xx answers
 * are final. A retry resends the same body, so an event's eventId lets the
 * collector store it once. The tracker calls `flushQueue` itself on load and on
 * `online`, so queued sends also go out when nothing new is sent.
 *
 * One function for all of it because /r.js has a gzip budget: the same few lines
 * serve the first attempt and every retry.
 */
import { QUEUE_KEY, QUEUE_MAX, QUEUE_MAX_AGE_MS, RETRY_BASE_MS } from './config.ts';

/** A send: url, body, first attempt and next attempt due (ms since the epoch; 0 = now). */
export type PendingSend = [url: string | URL, body: string, created: number, due: number];

/**
 * Reads the queue, adds `added`, posts what is due and writes back the rest (the
 * newest QUEUE_MAX). Backoff without an attempt counter: a send that failed is next
 * due after as long again as it has already waited, plus RETRY_BASE_MS (30 s,
 * ~1 min, ~2 min, …).
 */
export function flushQueue(...added: PendingSend[]): void {
  const now = Date.now();
  let sends = added;
  try {
    sends = [...JSON.parse(localStorage[QUEUE_KEY]), ...added];
  } catch {} // none yet, or unreadable: start over (the write below repairs it)
  try {
    localStorage[QUEUE_KEY] = JSON.stringify(
      sends
        .filter(
          (send) =>
            // Past QUEUE_MAX_AGE_MS, or no send at all (the `online` event, when this
            // is its listener): dropped.
            send[2] > now - QUEUE_MAX_AGE_MS &&
            // Not due yet: kept.
            (send[3] > now ||
              // Due: posted, and out of the queue until it fails in a way that may
              // succeed later (a network error, 5xx or 429) and comes back through here.
              ((send[3] = 2 * now - send[2] + RETRY_BASE_MS),
              fetch(send[0], { method: 'POST', body: send[1], keepalive: true }).then(
                (response) => (response.status < 500 && response.status != 429) || flushQueue(send),
                () => flushQueue(send),
              ),
              false)),
        )
        .slice(-QUEUE_MAX),
    );
  } catch {}
}

/** Sends `body` to `url` now, queued for a retry if that fails (the tracker builds the same entry inline). */
export const deliver = (url: string | URL, body: string): void => flushQueue([url, body, Date.now(), 0]);
