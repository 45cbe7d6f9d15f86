/**
 * GET / — where someone who just ran `npm start` lands: what this is and where to go
 * next (the demo, the dashboard, the docs, the health checks). HTML, no script.
 */
import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import { DEMO_CODE, demoPublishableKey } from '../demo.ts';
import { sendPage } from '../http/page.ts';

const DEMO_LINKS = `<li><a href="/demo/">Demo shop</a> — try a referral end to end: follow the referral link
<a href="/r/${DEMO_CODE}">/r/${DEMO_CODE}</a>, sign up, buy, then see it in the dashboard.</li>`;

const NO_DEMO = `<li><span class="muted">No demo program on this collector.</span> The first start on an empty
embedded database creates one (<code>DEMO=auto</code>); on <code>DATABASE_URL</code> set <code>DEMO=on</code>.</li>`;

const body = (hasDemo: boolean) => `<h1>Referral tracker</h1>
<p>This collector is running. It records referral clicks and conversions, attributes each new
customer to the person who referred them, and grants rewards by your rules.</p>
<h2>Start here</h2>
<ul>
${hasDemo ? DEMO_LINKS : NO_DEMO}
<li><a href="/admin">Dashboard</a> — sign in with a program's secret key (<code>sk_…</code>). The demo's
is printed in the terminal on the first start.</li>
<li><a href="/v1/openapi.json">HTTP API</a> — the OpenAPI 3.1 document, generated from the schemas that
validate every request.</li>
<li><strong>README.md</strong> <span class="muted">(in the package you installed)</span> — the five-minute
integration guide, the demo walkthrough, the script tag's options and the configuration.</li>
</ul>
<h2>Health</h2>
<ul>
<li><a href="/v1/health">/v1/health</a> — alive: the process answers.</li>
<li><a href="/v1/ready">/v1/ready</a> — ready: the database answers too (503 when it does not).</li>
</ul>`;

export function homeRoutes({ db }: Pick<Deps, 'db'>) {
  const router = new Router();
  router.get('/', async (ctx) => {
    sendPage(ctx, 200, { title: 'Referral tracker', body: body(Boolean(await demoPublishableKey(db))) });
  });
  return router;
}
