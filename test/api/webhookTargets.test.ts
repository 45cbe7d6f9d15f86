/**
 * Outgoing webhooks never reach this machine or its networks (DESIGN "Trust rules"):
 * a program owner could otherwise make the collector POST to 127.0.0.1:6379 or the
 * cloud metadata address and read the outcome from GET /v1/webhooks/deliveries.
 * Checked when settings.webhookUrl is set, and again on every delivery against the
 * address the socket actually connects to. Only loopback receivers are ever used.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram, updateProgram } from '../../collector/src/domain/programs.ts';
import { deliverDueWebhooks } from '../../collector/src/domain/webhooks.ts';
import { ADMIN_TOKEN, type TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { deliveries, expectError, expectOk, serverSignup } from '../helpers/steps.ts';
import { useTestApp, type Suite } from '../helpers/suite.ts';

/** A receiver on 127.0.0.1 that counts TCP connections, so "refused before connecting" can be seen. */
async function startReceiver() {
  let connections = 0;
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => res.writeHead(200).end('ok'));
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}/hooks`,
    get connections() {
      return connections;
    },
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Each refused form, and the word its field message must contain. */
const REFUSED: Array<[url: string, why: RegExp]> = [
  ['http://127.0.0.1/hooks', /127\.0\.0\.1 is a loopback address/],
  ['http://127.0.0.1:6379/', /loopback/],
  ['http://0.0.0.0/', /unspecified/],
  ['http://2130706433/', /127\.0\.0\.1 is a loopback address/],
  ['http://0x7f.1/', /127\.0\.0\.1 is a loopback address/],
  ['http://0177.0.0.1/', /loopback/],
  ['http://127.1/', /loopback/],
  ['http://[::1]/', /::1 is a loopback address/],
  ['https://[::]/', /unspecified/],
  ['http://[::ffff:127.0.0.1]/', /::ffff:7f00:1 \(127\.0\.0\.1\) is a loopback address/],
  ['http://[::ffff:10.0.0.1]/', /private/],
  ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is a link-local address/],
  ['http://[fd00::1]/', /unique-local/],
  ['http://[fe80::1]/', /link-local/],
  ['http://10.0.0.5/', /10\.0\.0\.5 is a private address/],
  ['http://192.168.1.10/', /private/],
  ['http://172.16.0.1/', /private/],
  ['http://172.31.255.254/', /private/],
  ['http://100.64.0.1/', /carrier-grade NAT/],
  ['http://255.255.255.255/', /broadcast/],
  ['http://224.0.0.1/', /multicast/],
  ['http://240.0.0.1/', /reserved/],
  // 6to4 and NAT64 addresses that embed 127.0.0.1 and 10.0.0.1.
  ['http://[2002:7f00:1::]/', /6to4/],
  ['http://[64:ff9b::a00:1]/', /rfc6052/],
  ['http://localhost/', /localhost/],
  ['http://localhost:8080/hooks', /localhost/],
  ['http://LOCALHOST./', /localhost/],
  ['http://api.localhost/', /api\.localhost/],
];

/** A resolver that answers what it is told, and records what it was asked. */
function fakeResolver(answers: (hostname: string, call: number) => string[]) {
  const asked: string[] = [];
  const resolve = async (hostname: string) => {
    asked.push(hostname);
    return answers(hostname, asked.length).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { resolve, asked };
}

describe.each(DATABASES)('webhook targets (%s)', (kind) => {
  let suite: Suite;
  let allowing: TestApp;
  useTestApp(kind, (s) => (suite = s));
  beforeAll(async () => {
    allowing = await suite.startApp({ WEBHOOK_ALLOW_PRIVATE: '1' });
  });

  /** One referral.created queued for the program. */
  const queueOne = async (api: TestApp, p: ProgramFixture) => {
    const alice = await buildParticipant(api, p);
    await serverSignup(api, p, uniq('bob-'), alice.code);
  };

  describe('when settings.webhookUrl is set', () => {
    it.each(REFUSED)('PATCH /v1/program refuses %s with 422 and says why and what to do', async (url, why) => {
      const p = await buildProgram(suite.api);
      const reply = await suite.api.patch('/v1/program', { settings: { webhookUrl: url } }, { auth: p.secret });
      expectError(reply, 422, 'validation_failed');
      const message = reply.body.error.fields?.['settings.webhookUrl'] as string;
      expect(message, reply.text).toMatch(why);
      expect(message).toMatch(/WEBHOOK_ALLOW_PRIVATE=1/);
      expect(expectOk(await suite.api.get('/v1/program', { auth: p.secret })).program.settings.webhookUrl).toBeUndefined();
    });

    it.each(REFUSED)('POST /v1/programs refuses %s with 422 and says why', async (url, why) => {
      const name = `Program ${uniq()}`;
      const reply = await suite.api.post(
        '/v1/programs',
        { name, origins: ['https://shop.example'], landingUrl: 'https://shop.example/', settings: { webhookUrl: url } },
        { auth: ADMIN_TOKEN },
      );
      expectError(reply, 422, 'validation_failed');
      expect(reply.body.error.fields?.['settings.webhookUrl'], reply.text).toMatch(why);
      expect(await suite.db('programs').where({ name }).first()).toBeUndefined();
    });

    it.each(['https://hooks.a-shop.example/referrals', 'https://8.8.8.8/hooks', 'https://[2606:4700::1111]/hooks'])(
      'accepts a public target: %s',
      async (url) => {
        const p = await buildProgram(suite.api, { settings: { webhookUrl: url } });
        expect(p.program.settings.webhookUrl).toBe(url);
        const patched = expectOk(await suite.api.patch('/v1/program', { settings: { webhookUrl: url } }, { auth: p.secret }));
        expect(patched.program.settings.webhookUrl).toBe(url);
      },
    );

    it('WEBHOOK_ALLOW_PRIVATE=1 accepts loopback and private targets (local development)', async () => {
      const p = await buildProgram(allowing, { settings: { webhookUrl: 'http://127.0.0.1:9/hooks' } });
      expect(p.program.settings.webhookUrl).toBe('http://127.0.0.1:9/hooks');
      for (const url of ['http://localhost:3000/hooks', 'http://10.0.0.5/', 'http://[::1]:8080/']) {
        expect(
          expectOk(await allowing.patch('/v1/program', { settings: { webhookUrl: url } }, { auth: p.secret })).program.settings.webhookUrl,
        ).toBe(url);
      }
    });

    it('a hostname is refused when any address it resolves to is refused', async () => {
      const p = await buildProgram(suite.api);
      const row = (await findProgram(suite.db, p.id))!;
      for (const answer of [['10.1.2.3'], ['93.184.216.34', '127.0.0.1'], ['fd12::1']]) {
        const { resolve } = fakeResolver(() => answer);
        await expect(
          updateProgram(
            suite.db,
            row,
            { settings: { webhookUrl: 'https://hooks.internal-shop.example/x' } },
            { allowPrivate: false, resolve },
          ),
        ).rejects.toMatchObject({
          status: 422,
          code: 'validation_failed',
          fields: {
            'settings.webhookUrl': expect.stringMatching(/hooks\.internal-shop\.example resolves to .* (private|loopback|unique-local)/),
          },
        });
      }
      const { resolve, asked } = fakeResolver(() => ['93.184.216.34']);
      const updated = await updateProgram(
        suite.db,
        row,
        { settings: { webhookUrl: 'https://hooks.public-shop.example/x' } },
        { allowPrivate: false, resolve },
      );
      expect(updated.settings.webhookUrl).toBe('https://hooks.public-shop.example/x');
      expect(asked).toEqual(['hooks.public-shop.example']);
    });
  });

  describe('at delivery', () => {
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    beforeAll(async () => {
      receiver = await startReceiver();
    });
    afterAll(async () => {
      await receiver?.close();
    });

    it('a stored loopback target (set while allowed) is refused before any connection and failed at once', async () => {
      const stored = [
        receiver.url,
        `https://127.0.0.1:${receiver.port}/hooks`,
        `http://localhost:${receiver.port}/hooks`,
        `http://[::ffff:127.0.0.1]:${receiver.port}/hooks`,
      ];
      for (const url of stored) {
        const p = await buildProgram(allowing, { settings: { webhookUrl: url } });
        await queueOne(allowing, p);
        await deliverDueWebhooks(suite.db, { allowPrivate: false });
        expect(receiver.connections, url).toBe(0);
        const delivery = (await deliveries(suite.api, p))[0]!;
        expect(delivery, url).toMatchObject({
          type: 'referral.created',
          status: 'failed',
          attempts: 1,
          lastStatus: null,
          nextAttemptAt: null,
          deliveredAt: null,
        });
        expect(delivery.lastError).toMatch(
          /^refused: (127\.0\.0\.1|localhost|::ffff:7f00:1 \(127\.0\.0\.1\)) is a loopback (address|name)$/,
        );
      }
    });

    it('a row inserted straight into the outbox is refused too', async () => {
      const p = await buildProgram(suite.api);
      await suite.db('webhook_outbox').insert({
        program_id: p.id,
        type: 'referral.created',
        url: `http://0x7f.1:${receiver.port}/hooks`,
        payload: JSON.stringify({ forged: true }),
      });
      await deliverDueWebhooks(suite.db, { allowPrivate: false });
      expect(receiver.connections).toBe(0);
      const delivery = (await deliveries(suite.api, p))[0]!;
      expect(delivery).toMatchObject({ status: 'failed', attempts: 1, lastError: 'refused: 127.0.0.1 is a loopback address' });
    });

    it('DNS rebinding: a name that resolved to a public address when set, and to 127.0.0.1 now, is refused with zero connections', async () => {
      const p = await buildProgram(suite.api);
      const url = `http://hooks.rebinding-shop.example:${receiver.port}/hooks`;
      // Public when the owner sets it…
      const rebinding = fakeResolver((_host, call) => (call === 1 ? ['93.184.216.34'] : ['127.0.0.1']));
      const row = await updateProgram(
        suite.db,
        (await findProgram(suite.db, p.id))!,
        { settings: { webhookUrl: url } },
        { allowPrivate: false, resolve: rebinding.resolve },
      );
      expect(row.settings.webhookUrl).toBe(url);
      await queueOne(suite.api, p);
      // …loopback when the collector connects.
      await deliverDueWebhooks(suite.db, { allowPrivate: false, resolve: rebinding.resolve });
      expect(rebinding.asked.length).toBeGreaterThanOrEqual(2);
      expect(receiver.connections).toBe(0);
      const delivery = (await deliveries(suite.api, p))[0]!;
      expect(delivery).toMatchObject({
        status: 'failed',
        attempts: 1,
        lastError: 'refused: hooks.rebinding-shop.example resolves to 127.0.0.1, a loopback address',
      });
    });

    it('control: the resolver decides where the socket goes (allowed, the same answer reaches the receiver)', async () => {
      const p = await buildProgram(allowing, { settings: { webhookUrl: `http://hooks.rebinding-shop.example:${receiver.port}/hooks` } });
      await queueOne(allowing, p);
      const loopback = fakeResolver(() => ['127.0.0.1']);
      const before = receiver.connections;
      await deliverDueWebhooks(suite.db, { allowPrivate: true, resolve: loopback.resolve });
      expect(loopback.asked).toContain('hooks.rebinding-shop.example');
      expect(receiver.connections).toBe(before + 1);
      expect((await deliveries(suite.api, p))[0]).toMatchObject({ status: 'delivered', attempts: 1, lastStatus: 200, lastError: null });
    });
  });
});
