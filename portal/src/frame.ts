/**
 * Inside a host's iframe (portal.js), the page tells the host its height so the
 * frame can fit it: a message with a number only, nothing personal. The host's
 * script checks that it comes from this origin and from its own frame.
 */

export const HEIGHT_MESSAGE = 'referral-portal:height';

export function reportHeight(): void {
  if (window.parent === window) return;
  let last = 0;
  const send = () => {
    const height = Math.ceil(document.body.getBoundingClientRect().height);
    if (height === last) return;
    last = height;
    window.parent.postMessage({ type: HEIGHT_MESSAGE, height }, '*');
  };
  new ResizeObserver(send).observe(document.body);
  send();
}
