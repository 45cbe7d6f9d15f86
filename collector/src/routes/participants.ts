import Router from '@koa/router';
import { ExternalIdSchema, ParticipantCreateSchema, ParticipantUpdateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { idempotency } from '../http/idempotency.ts';
import { parse } from '../http/validate.ts';
import { AppError, notFound } from '../errors.ts';
import { checkUnknownCodeBudget, spendUnknownCode } from '../http/rateLimit.ts';
import { createParticipant, participantDetails } from '../domain/participants.ts';
import { eraseParticipant } from '../domain/erasure.ts';
import { setPayoutDetails } from '../domain/payoutDetails.ts';

export function participantRoutes({ db, config, limits }: Deps) {
  const router = new Router<AppState>();
  router.use('/v1/participants', requireSecretKey(db, limits));

  router.post('/v1/participants', idempotency(db), async (ctx) => {
    const input = parse(ParticipantCreateSchema, ctx.request.body);
    // Codes are unique across the collector, so a taken one says it exists in some
    // program: asking for codes spends the per-IP unknown-code budget like probing
    // /r/:code, and once it is spent every code asked for is refused (taken or free).
    if (input.code) await checkUnknownCodeBudget(limits.unknownCode, ctx.ip);
    const { created, body } = await createParticipant(db, ctx.state.program.id, input, config.publicUrl).catch(async (error: unknown) => {
      if (error instanceof AppError && error.code === 'code_taken') await spendUnknownCode(limits.unknownCode, ctx.ip);
      throw error;
    });
    ctx.status = created ? 201 : 200;
    ctx.body = body;
  });

  router.get('/v1/participants/:externalId', async (ctx) => {
    const externalId = parse(ExternalIdSchema, ctx.params.externalId, 'externalId');
    ctx.body = await participantDetails(db, ctx.state.program.id, externalId, config.publicUrl);
  });

  /** Payout details (how and where the referrer is paid); the referrer can set them in the portal too. */
  router.patch('/v1/participants/:externalId', async (ctx) => {
    const externalId = parse(ExternalIdSchema, ctx.params.externalId, 'externalId');
    const input = parse(ParticipantUpdateSchema, ctx.request.body);
    await setPayoutDetails(db, ctx.state.program.id, externalId, input.payout);
    ctx.body = await participantDetails(db, ctx.state.program.id, externalId, config.publicUrl);
  });

  /** GDPR erasure: the person is forgotten, the program's books stay (see domain/erasure.ts). */
  router.delete('/v1/participants/:externalId', async (ctx) => {
    const externalId = parse(ExternalIdSchema, ctx.params.externalId, 'externalId');
    if (!(await eraseParticipant(db, ctx.state.program.id, externalId))) throw notFound('Participant');
    ctx.status = 204;
  });
  return router;
}
