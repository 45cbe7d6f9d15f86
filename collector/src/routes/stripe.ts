import Router from '@koa/router';
import { StripeEventSchema, type StripeEvent } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { badRequest, notFound, unprocessable } from '../errors.ts';
import { findProgramBySlug } from '../domain/programs.ts';
import { handleStripeEvent } from '../domain/stripe.ts';
import { loadStripe } from '../stripeClient.ts';


/** Signatures older than this, or dated further ahead, are refused (Stripe's own default). */
const TOLERANCE_SECONDS = 300;

/**
 * The SDK refuses only old timestamps; a signature dated in the future would stay
 * replayable until then. Reads `t=` as the SDK does (the last one counts).
 */
function datedAhead(header: string, nowMs = Date.now()): boolean {
  const stamps = header.split(',').filter((item) => item.split('=')[0] === 't');
  const timestamp = Number.parseInt(stamps.at(-1)?.split('=')[1] ?? '', 10);
  return !Number.isFinite(timestamp) || timestamp - nowMs / 1000 > TOLERANCE_SECONDS;
}

/** The event, once the official SDK has checked its signature against the raw body; nothing is read before. */
async function verifiedEvent(rawBody: string, signature: string, secret: string): Promise<StripeEvent> {
  if (!signature) throw badRequest('invalid_signature', 'The Stripe-Signature header is missing');
  const Stripe = await loadStripe();
  let event: unknown;
  try {
    event = Stripe.webhooks.constructEvent(rawBody, signature, secret, TOLERANCE_SECONDS);
  } catch {
    throw badRequest('invalid_signature', 'The Stripe signature does not match this payload');
  }
  if (datedAhead(signature)) throw badRequest('invalid_signature', "The Stripe signature is dated in the future; check the sender's clock");
  const shape = StripeEventSchema.safeParse(event);
  if (!shape.success) throw unprocessable('invalid_stripe_payload', 'The Stripe event has no id, type or data.object');
  return shape.data;
}

/** Stripe webhooks, verified with the program's settings.stripe.webhookSecret before anything is read. */
export function stripeRoutes({ db, logger }: Deps) {
  const router = new Router();
  router.post('/v1/integrations/stripe/:programSlug', async (ctx) => {
    const slug = String(ctx.params.programSlug);
    const program = /^[a-z0-9-]{1,100}$/.test(slug) ? await findProgramBySlug(db, slug) : undefined;
    if (!program) throw notFound('Program');
    const secret = program.settings.stripe?.webhookSecret;
    if (!secret) throw badRequest('stripe_not_configured', 'Set settings.stripe.webhookSecret for this program first');
    const event = await verifiedEvent(ctx.request.rawBody ?? '', ctx.get('stripe-signature'), secret);
    const outcome = await handleStripeEvent(db, program, event);
    logger.debug({ event: event.id, type: event.type, handled: outcome.handled }, 'stripe event');
    ctx.body = { received: true, ...outcome };
  });
  return router;
}
