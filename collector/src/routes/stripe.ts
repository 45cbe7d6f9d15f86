import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import { z } from 'zod';
import { badRequest, notFound, unprocessable } from '../errors.ts';

const StripeEventSchema = z.object({ id: z.string().min(1).max(255), type: z.string().max(255), data: z.object({ object: z.unknown() }) });
import { findProgramBySlug } from '../domain/programs.ts';
import { handleStripeEvent } from '../domain/stripe.ts';

/** The Stripe SDK, loaded on the first webhook (installs that never use Stripe do not carry it). */
let stripeSdk: Promise<typeof import('stripe').default> | undefined;
const loadStripe = () => (stripeSdk ??= import('stripe').then((module) => module.default));

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

/** Stripe webhooks, verified with the program's settings.stripe.webhookSecret before anything is read. */
export function stripeRoutes({ db, logger }: Deps) {
  const router = new Router();
  router.post('/v1/integrations/stripe/:programSlug', async (ctx) => {
    const slug = String(ctx.params.programSlug);
    const program = /^[a-z0-9-]{1,100}$/.test(slug) ? await findProgramBySlug(db, slug) : undefined;
    if (!program) throw notFound('Program');
    const secret = program.settings.stripe?.webhookSecret;
    if (!secret) throw badRequest('stripe_not_configured', 'Set settings.stripe.webhookSecret for this program first');
    const signature = ctx.get('stripe-signature');
    if (!signature) throw badRequest('invalid_signature', 'The Stripe-Signature header is missing');
    const Stripe = await loadStripe();
    let event: { id: string; type: string; data: { object: unknown } };
    try {
      event = Stripe.webhooks.constructEvent(ctx.request.rawBody ?? '', signature, secret, TOLERANCE_SECONDS) as typeof event;
    } catch {
      throw badRequest('invalid_signature', 'The Stripe signature does not match this payload');
    }
    if (datedAhead(signature))
      throw badRequest('invalid_signature', "The Stripe signature is dated in the future; check the sender's clock");
    const shape = StripeEventSchema.safeParse(event);
    if (!shape.success) throw unprocessable('invalid_stripe_payload', 'The Stripe event has no id, type or data.object');
    const outcome = await handleStripeEvent(db, program, shape.data);
    logger.debug({ event: event.id, type: event.type, handled: outcome.handled }, 'stripe event');
    ctx.body = { received: true, ...outcome };
  });
  return router;
}
