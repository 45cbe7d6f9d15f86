/**
 * Payment provider webhooks: `POST /v1/integrations/{stripe,paddle,lemonsqueezy}/:programSlug`,
 * each verified with the program's `settings.<provider>.webhookSecret` before anything
 * is read, then run as the same commands (domain/providers/commands.ts).
 */
import Router from '@koa/router';
import type { PaymentProvider } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { badRequest, notFound } from '../errors.ts';
import { findProgramBySlug } from '../domain/programs.ts';
import { runCommand, type ProviderAdapter } from '../domain/providers/commands.ts';
import { lemonSqueezyProvider } from '../domain/providers/lemonsqueezy.ts';
import { paddleProvider } from '../domain/providers/paddle.ts';
import { stripeProvider } from '../domain/providers/stripe.ts';

const NAMES: Record<PaymentProvider, string> = { stripe: 'Stripe', paddle: 'Paddle', lemonsqueezy: 'Lemon Squeezy' };

/** One provider's route: the program by slug, its secret, the verified event, its command. */
function mount<Event>(router: Router, { db, config, logger }: Deps, adapter: ProviderAdapter<Event>) {
  router.post(`/v1/integrations/${adapter.name}/:programSlug`, async (ctx) => {
    const slug = String(ctx.params.programSlug);
    const program = /^[a-z0-9-]{1,100}$/.test(slug) ? await findProgramBySlug(db, slug) : undefined;
    if (!program) throw notFound('Program');
    const secret = program.settings[adapter.name]?.webhookSecret;
    if (!secret) {
      throw badRequest(
        `${adapter.name}_not_configured`,
        `Set settings.${adapter.name}.webhookSecret for this program first (${NAMES[adapter.name]} webhooks)`,
      );
    }
    const event = await adapter.verify(ctx.request.rawBody ?? '', (name) => ctx.get(name), secret);
    const command = await adapter.commandFor(event, { program, config });
    const outcome = await runCommand(db, program, adapter.name, command);
    logger.debug({ provider: adapter.name, ...adapter.describe(event), handled: outcome.handled }, 'payment provider event');
    ctx.body = { received: true, ...outcome };
  });
}

export function integrationRoutes(deps: Deps) {
  const router = new Router();
  mount(router, deps, stripeProvider);
  mount(router, deps, paddleProvider);
  mount(router, deps, lemonSqueezyProvider);
  return router;
}
