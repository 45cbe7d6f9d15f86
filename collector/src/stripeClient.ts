/**
 * The official Stripe SDK, loaded on first use (installs that never use Stripe do not
 * carry it), and API clients made from it. `STRIPE_API_URL` points the SDK's host,
 * port and protocol elsewhere (a proxy, or the local stand-in the tests run, since
 * Stripe cannot be reached from every network).
 */
import type Stripe from 'stripe';

let sdk: Promise<typeof import('stripe').default> | undefined;

/** The SDK's default export (also for webhook signature checks, which need no client). */
export const loadStripe = () => (sdk ??= import('stripe').then((module) => module.default));

export async function stripeClient(secretKey: string, apiUrl?: string): Promise<Stripe> {
  const StripeSdk = await loadStripe();
  const url = apiUrl ? new URL(apiUrl) : undefined;
  return new StripeSdk(secretKey, {
    maxNetworkRetries: 2,
    timeout: 20_000,
    ...(url
      ? {
          host: url.hostname,
          port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
          protocol: url.protocol === 'https:' ? 'https' : 'http',
        }
      : {}),
  });
}
