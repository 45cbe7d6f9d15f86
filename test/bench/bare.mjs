/**
 * The baseline: bare Koa reading the request body and answering 204. The collector's
 * figures are printed as ratios against this, measured in the same run.
 */
import Koa from 'koa';

const app = new Koa();
app.use(async (ctx) => {
  for await (const _chunk of ctx.req) {
    // drain the body, as the collector does
  }
  ctx.status = 204;
});
const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : ''}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
