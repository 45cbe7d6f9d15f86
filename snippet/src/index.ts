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

// One guard for the whole entry: without a script tag to read (no currentScript),
// the stub stays in place and nothing runs. (`self` is `window` in a page, and
// shorter.)
try {
  const script = document.currentScript as HTMLScriptElement;
  const queued = (self.referral && (self.referral as LoaderStub).q) || [];
  const tracker = (self.referral = startTracker(script.dataset, script.src));
  queued.map((args) => tracker(...(args as unknown as [string, unknown])));
} catch {}
