/**
 * The script-tag build (/r.js): reads its own data-* attributes, starts the tracker,
 * puts it in place of the loader stub as `window.referral`, and replays the calls
 * the stub queued, in order.
 */
import { startTracker, type Tracker } from './tracker.ts';

/** What the loader stub leaves behind: each call's `arguments`, queued in `q`. */
interface LoaderStub {
  q?: IArguments[];
}

declare global {
  interface Window {
    referral?: Tracker | LoaderStub;
  }
}

try {
  const script = document.currentScript as HTMLScriptElement;
  const queued = ((window.referral || {}) as LoaderStub).q || [];
  const tracker = (window.referral = startTracker(script.dataset, script.src));
  for (const args of queued) tracker(args[0], args[1]);
} catch {}
