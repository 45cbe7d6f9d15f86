import { Readable } from 'node:stream';
import Router from '@koa/router';
import { ReportRangeSchema, ReportReferrersQuerySchema, ReportTimeseriesQuerySchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { parseQuery } from '../http/validate.ts';
import { notFound } from '../errors.ts';
import { type EXPORTS, streamExport } from '../domain/exports.ts';
import { referrersReport, resolveRange, summaryReport, timeseriesReport } from '../domain/reports.ts';

export function reportRoutes({ db, logger, limits }: Deps) {
  const router = new Router<AppState>();
  const auth = requireSecretKey(db, limits);

  router.get('/v1/reports/summary', auth, async (ctx) => {
    const range = resolveRange(parseQuery(ReportRangeSchema, ctx.query));
    ctx.body = await summaryReport(db, ctx.state.program.id, range);
  });

  router.get('/v1/reports/referrers', auth, async (ctx) => {
    const query = parseQuery(ReportReferrersQuerySchema, ctx.query);
    ctx.body = await referrersReport(db, ctx.state.program.id, resolveRange(query), query);
  });

  router.get('/v1/reports/timeseries', auth, async (ctx) => {
    const query = parseQuery(ReportTimeseriesQuerySchema, ctx.query);
    ctx.body = await timeseriesReport(db, ctx.state.program.id, resolveRange(query), query.interval);
  });

  router.get('/v1/exports/:file', auth, async (ctx) => {
    const kind = /^(referrals|rewards|clicks)\.csv$/.exec(String(ctx.params.file))?.[1] as keyof typeof EXPORTS | undefined;
    if (!kind) throw notFound('Export');
    const query = parseQuery(ReportRangeSchema, ctx.query);
    if (query.from && query.to) resolveRange(query);
    const stream = Readable.from(streamExport(db, ctx.state.program.id, kind, query));
    stream.on('error', (error) => logger.error({ err: error, kind }, 'export failed mid-stream'));
    ctx.set('Content-Type', 'text/csv; charset=utf-8');
    ctx.set('Content-Disposition', `attachment; filename="${kind}.csv"`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = stream;
  });
  return router;
}
