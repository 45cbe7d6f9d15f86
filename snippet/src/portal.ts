/**
 * The portal embed (/portal.js), a separate script so /r.js does not grow: it adds
 * `referral('portal', { element, token })`, which shows the referrer's page
 * (/portal/<token>) in an iframe inside `element` (an element or a selector), sized
 * to its content by height messages from that page.
 *
 * It takes the 'portal' command over by wrapping `window.referral`, whatever is
 * there: the loader stub (its queued 'portal' calls are taken out of `q` and run
 * now, the rest stay for /r.js), the tracker, or nothing yet. `window.referral`
 * becomes an accessor: when /r.js loads later and assigns its tracker, the setter
 * puts the tracker behind the wrapper, and `referral.get()` and `referral.q` read
 * through to whatever is behind it. Never throws into the host page.
 */

/** What the host passes to `referral('portal', …)`. */
export interface PortalOptions {
  /** Where the portal goes: an element or a CSS selector. Its content is replaced. */
  element: Element | string;
  /** The token from `POST /v1/participants/:externalId/portal`. */
  token: string;
}

/** Must match portal/src/frame.ts. */
const HEIGHT_MESSAGE = 'referral-portal:height';
const INITIAL_HEIGHT = '640px';

type Command = ((...args: unknown[]) => unknown) & { q?: IArguments[]; get?: () => unknown };

declare global {
  interface Window {
    __referralPortal?: boolean;
  }
}

try {
  const script = document.currentScript as HTMLScriptElement | null;
  // The collector: data-api, else where this script came from.
  const base = new URL(script?.dataset.api || script?.src || location.href, location.href);
  const origin = base.origin;

  const embed = (options: PortalOptions) => {
    try {
      const target = typeof options.element === 'string' ? document.querySelector(options.element) : options.element;
      if (!target || !options.token) return;
      const frame = document.createElement('iframe');
      // Beside this script, like /r.js's endpoints (a first-party proxy keeps its path).
      frame.src = new URL(`portal/${encodeURIComponent(options.token)}`, base).href;
      frame.title = 'Your referrals';
      // The page's Copy button writes the clipboard from inside the frame.
      frame.allow = 'clipboard-write';
      frame.referrerPolicy = 'no-referrer';
      frame.setAttribute('data-referral-portal', '');
      frame.style.cssText = `display:block;width:100%;border:0;height:${INITIAL_HEIGHT}`;
      const fit = (event: MessageEvent) => {
        if (!frame.isConnected) return removeEventListener('message', fit);
        const data = event.data as { type?: unknown; height?: unknown } | null;
        if (event.origin !== origin || event.source !== frame.contentWindow || !data || data.type !== HEIGHT_MESSAGE) return;
        if (typeof data.height === 'number' && data.height > 0 && data.height < 100_000) frame.style.height = `${Math.ceil(data.height)}px`;
      };
      addEventListener('message', fit);
      target.replaceChildren(frame);
    } catch {}
  };

  // Loaded twice: the first copy already wraps window.referral.
  if (!window.__referralPortal) {
    window.__referralPortal = true;
    const w = window as unknown as { referral?: Command };
    // Behind the wrapper: the loader stub, the tracker, or a stub of our own that queues for /r.js.
    const stub: Command = function () {
      (stub.q = stub.q || []).push(arguments);
    };
    let inner: Command = w.referral || stub;
    const wrapper = function (this: unknown, name: unknown, data: unknown) {
      if (name === 'portal') return embed(data as PortalOptions);
      return inner.apply(this, arguments as unknown as unknown[]);
    } as Command;
    Object.defineProperty(wrapper, 'q', {
      get: () => inner.q,
      set: (queue: IArguments[]) => {
        inner.q = queue;
      },
    });
    Object.defineProperty(wrapper, 'get', { get: () => inner.get && inner.get.bind(inner) });

    // 'portal' calls already queued in the stub run now; the others stay for /r.js.
    const queue = inner.q || [];
    for (let i = 0; i < queue.length; ) {
      const args = queue[i] as IArguments;
      if (args[0] === 'portal') {
        queue.splice(i, 1);
        embed(args[1] as PortalOptions);
      } else i++;
    }

    Object.defineProperty(window, 'referral', {
      configurable: true,
      enumerable: true,
      get: () => wrapper,
      set: (value: Command) => {
        // /r.js assigning its tracker (or the loader stub line re-assigning us).
        if (value && value !== wrapper) inner = value;
      },
    });
  }
} catch {}
