/*
 * The demo shop's only script. A real site pastes two tags instead:
 *   <script>window.referral=window.referral||function(){(referral.q=referral.q||[]).push(arguments)}</script>
 *   <script async src="https://COLLECTOR/r.js" data-key="pk_…"></script>
 * Here the stub runs from this file (the demo pages allow no inline script) and
 * the snippet tag is added once /demo/config.json has told us the demo's key.
 *
 * Everything else in this file is the demo explaining itself, which a real site
 * needs none of: it watches the snippet's requests so the page can say what really
 * happened to each call (sent and recorded, refused, or not sent at all).
 */
window.referral =
  window.referral ||
  function () {
    (referral.q = referral.q || []).push(arguments);
  };

/** 'loading' until /demo/config.json answers, then 'ready' or 'missing'. */
let demoProgram = 'loading';

fetch('/demo/config.json')
  .then((response) => (response.ok ? response.json() : Promise.reject(new Error('no demo program'))))
  .then(({ key }) => {
    demoProgram = 'ready';
    const script = document.createElement('script');
    script.async = true;
    script.src = '/r.js';
    script.dataset.key = key;
    document.head.appendChild(script);
    for (const element of document.querySelectorAll('.key')) element.textContent = key;
  })
  .catch(() => {
    demoProgram = 'missing';
    show('#referral-state', 'The demo program is missing: start the collector on an empty database with DEMO=auto.');
  });

// ---- what the snippet does, observed ------------------------------------------------

/**
 * Why the snippet sends nothing in this browser, or null when it sends. The same rules
 * as the snippet's own (snippet/src/tracker.ts): bots and opted-out browsers are silent.
 */
function silenceReason() {
  if (demoProgram == 'missing') return 'this collector has no demo program';
  if (navigator.webdriver) return 'this browser is automated (navigator.webdriver is true), and the snippet sends nothing for bots';
  try {
    if (localStorage._referral_optout == '1') return 'this browser opted out (localStorage._referral_optout is "1")';
  } catch {
    return 'this page may not use storage, so the snippet stays off';
  }
  return null;
}

/** Requests to /v1/events the snippet makes, handed to whoever waits for one. */
const watchers = [];
const pageFetch = window.fetch;
window.fetch = function (input, init) {
  const answer = pageFetch.apply(this, arguments);
  try {
    const url = new URL(input instanceof Request ? input.url : String(input), location.href);
    if (url.pathname.endsWith('/v1/events') && typeof init?.body == 'string') {
      const body = JSON.parse(init.body);
      for (const watch of watchers.slice()) watch(body, answer);
    }
  } catch {}
  return answer;
};

/** The collector's answer to the first event `matches` accepts: { status, body } or { error }. */
function answerTo(matches) {
  return new Promise((resolve) => {
    const watch = (body, answer) => {
      if (!matches(body)) return;
      watchers.splice(watchers.indexOf(watch), 1);
      answer.then(
        (response) =>
          response
            .clone()
            .json()
            .catch(() => null)
            .then((json) => resolve({ status: response.status, body: json })),
        (error) => resolve({ error }),
      );
    };
    watchers.push(watch);
  });
}

/** A refusal in one line: its field messages when it has some, else its message. */
function describeRefusal(body) {
  const error = body?.error;
  if (!error) return 'no explanation given';
  const fields = Object.entries(error.fields || {}).map(([field, message]) => `${field}: ${message}`);
  return fields.length ? fields.join('; ') : error.message;
}

/**
 * Calls referral(name, data) and keeps #result saying what became of it: not sent (and
 * why), sending, recorded by the collector (then `whatNext()`), refused (with its
 * reasons), or kept for a retry. `shown` is the part of `data` the sentence quotes;
 * `matches` picks the snippet's request for this call.
 */
function track(name, data, shown, matches, whatNext) {
  const args = Object.entries(shown).map(([field, value]) => `${field}: ${JSON.stringify(value)}`);
  const call = `referral('${name}', { ${args.join(', ')} })`;
  const reason = silenceReason();
  // Watching starts before the call: a loaded snippet sends at once.
  const answer = reason ? null : answerTo(matches);
  referral(name, data);
  if (!answer) {
    result('warn', `Not sent: ${reason}. ${call} did nothing, and the collector recorded nothing.`);
    return;
  }
  result('pending', `Sending ${call}…`);
  answer.then(({ status, body, error }) => {
    if (error) result('warn', `Not delivered: the collector could not be reached. The snippet keeps the ${name} and retries later.`);
    else if (status == 202) result('ok', `Sent ${call}: the collector recorded the ${name} (202 Accepted).`, whatNext());
    else if (status >= 500 || status == 429)
      result('warn', `The collector answered ${status}; the snippet keeps the ${name} and retries later.`);
    else result('error', `Refused: the collector answered ${status}: ${describeRefusal(body)}.`);
  });
}

// ---- the page ------------------------------------------------------------------------

function show(selector, text) {
  const element = document.querySelector(selector);
  if (element) element.textContent = text;
}

/** Sets #result: its state (ok, warn, error, pending), a sentence, and maybe a next step with a link. */
function result(state, text, next) {
  const element = document.querySelector('#result');
  if (!element) return;
  element.dataset.state = state;
  element.textContent = text;
  if (next) {
    element.append(' ', next.text, ' ');
    const link = document.createElement('a');
    link.href = next.href;
    link.textContent = next.link;
    element.append(link, '.');
  }
}

function showReferral() {
  const state = referral.get();
  const reason = silenceReason();
  let text = JSON.stringify(state, null, 2);
  if (reason) text += `\n\nThe snippet is off here: ${reason}.`;
  else if (!state) text += '\n\nNo referral code yet: arrive through the referral link /r/DEMO.';
  show('#referral-state', text);
}

function randomId(prefix) {
  return prefix + Math.random().toString(36).slice(2, 10);
}

/** This browser's demo customer: one user id, made once, so the signup and the purchase are one person. */
const USER_KEY = 'demo_user_id';
function demoUserId() {
  try {
    return localStorage[USER_KEY] || (localStorage[USER_KEY] = randomId('visitor-'));
  } catch {
    return randomId('visitor-');
  }
}

/** $49.00 for 4900 USD: the amount in major units, per the currency's own decimals. */
function formatMinorUnits(amount, currency) {
  try {
    const format = new Intl.NumberFormat('en-US', { style: 'currency', currency });
    return format.format(amount / 10 ** format.resolvedOptions().maximumFractionDigits);
  } catch {
    return '';
  }
}

// Queued by the stub until /r.js has loaded, then run in order.
referral('ready', showReferral);

document.addEventListener('DOMContentLoaded', () => {
  for (const element of document.querySelectorAll('.origin')) element.textContent = location.origin;
  for (const element of document.querySelectorAll('.user-id')) element.textContent = demoUserId();

  document.querySelector('#reset')?.addEventListener('click', () => {
    document.cookie = '_referral=; path=/; max-age=0';
    localStorage.removeItem('_referral');
    localStorage.removeItem(USER_KEY);
    location.href = location.pathname;
  });

  const signup = document.querySelector('#signup-form');
  if (signup) {
    signup.elements.userId.value = demoUserId();
    signup.addEventListener('submit', (event) => {
      event.preventDefault();
      const userId = signup.elements.userId.value;
      const email = signup.elements.email.value || undefined;
      // Read once the collector has answered: the snippet has loaded by then.
      const next = () =>
        referral.get()
          ? {
              text: 'With the code in this browser, the collector attributes this user to the referrer. Next:',
              href: 'checkout.html',
              link: 'buy something',
            }
          : {
              text: 'This browser has no referral code, so nobody referred this user. To see a referral, start from',
              href: '/r/DEMO',
              link: '/r/DEMO',
            };
      track('signup', { userId, email }, { userId }, (body) => body.type == 'signup' && body.user?.id == userId, next);
    });
  }

  const checkout = document.querySelector('#checkout-form');
  if (checkout) {
    const { amount, currency } = checkout.elements;
    const preview = () => {
      const value = Number(amount.value);
      show(
        '#amount-preview',
        amount.value === ''
          ? ''
          : Number.isInteger(value)
            ? `= ${formatMinorUnits(value, currency.value.toUpperCase())}`
            : 'not a whole number of cents',
      );
    };
    amount.addEventListener('input', preview);
    currency.addEventListener('input', preview);
    preview();
    checkout.elements.userId.value = demoUserId();
    checkout.elements.orderId.value = randomId('order-');
    checkout.addEventListener('submit', (event) => {
      event.preventDefault();
      const order = {
        userId: checkout.elements.userId.value,
        orderId: checkout.elements.orderId.value,
        amount: Number(amount.value),
        currency: currency.value.toUpperCase(),
      };
      const next = () => ({
        text: 'A referred customer earns their referrer 20% of it, pending until approved. See the referral and the reward in',
        href: '/admin',
        link: 'the dashboard',
      });
      track(
        'purchase',
        order,
        { orderId: order.orderId, amount: order.amount },
        (body) => body.type == 'purchase' && body.order?.id == order.orderId,
        next,
      );
      checkout.elements.orderId.value = randomId('order-');
    });
  }
});
