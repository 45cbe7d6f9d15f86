/*
 * The demo shop's only script. A real site pastes two tags instead:
 *   <script>window.referral=window.referral||function(){(referral.q=referral.q||[]).push(arguments)}</script>
 *   <script async src="https://COLLECTOR/r.js" data-key="pk_…"></script>
 * Here the stub runs from this file (the demo pages allow no inline script) and
 * the snippet tag is added once /demo/config.json has told us the demo's key.
 */
window.referral =
  window.referral ||
  function () {
    (referral.q = referral.q || []).push(arguments);
  };

fetch('/demo/config.json')
  .then((response) => (response.ok ? response.json() : Promise.reject(new Error('no demo program'))))
  .then(({ key }) => {
    const script = document.createElement('script');
    script.async = true;
    script.src = '/r.js';
    script.dataset.key = key;
    document.head.appendChild(script);
    for (const element of document.querySelectorAll('.key')) element.textContent = key;
  })
  .catch(() => show('#referral-state', 'The demo program is missing: start the collector on an empty database with DEMO=auto.'));

function show(selector, text) {
  const element = document.querySelector(selector);
  if (element) element.textContent = text;
}

function showReferral() {
  show('#referral-state', JSON.stringify(referral.get(), null, 2));
}

function randomId(prefix) {
  return prefix + Math.random().toString(36).slice(2, 10);
}

// Queued by the stub until /r.js has loaded, then run in order.
referral('ready', showReferral);

document.addEventListener('DOMContentLoaded', () => {
  for (const element of document.querySelectorAll('.origin')) element.textContent = location.origin;

  document.querySelector('#reset')?.addEventListener('click', () => {
    document.cookie = '_referral=; path=/; max-age=0';
    localStorage.removeItem('_referral');
    location.href = location.pathname;
  });

  const signup = document.querySelector('#signup-form');
  if (signup) {
    signup.elements.userId.value = randomId('user-');
    signup.addEventListener('submit', (event) => {
      event.preventDefault();
      const userId = signup.elements.userId.value;
      const email = signup.elements.email.value || undefined;
      referral('signup', { userId, email });
      show('#result', `Sent referral('signup', { userId: "${userId}" }). The dashboard shows the signup and the referrer's reward.`);
    });
  }

  const checkout = document.querySelector('#checkout-form');
  if (checkout) {
    checkout.elements.userId.value = randomId('user-');
    checkout.elements.orderId.value = randomId('order-');
    checkout.addEventListener('submit', (event) => {
      event.preventDefault();
      const order = {
        userId: checkout.elements.userId.value,
        orderId: checkout.elements.orderId.value,
        amount: Number(checkout.elements.amount.value),
        currency: checkout.elements.currency.value.toUpperCase(),
      };
      referral('purchase', order);
      show('#result', `Sent referral('purchase', { orderId: "${order.orderId}", amount: ${order.amount} }).`);
      checkout.elements.orderId.value = randomId('order-');
    });
  }
});
