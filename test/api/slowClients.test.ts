import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../collector/src/config.ts';
import { start } from '../../collector/src/server.ts';
import { DATABASES } from '../helpers/databases.ts';
import { processDatabase } from '../helpers/processes.ts';

const ADMIN_TOKEN = 'slow-clients-admin-token-0123456789';
/** Far below the defaults, so a stalled socket is closed while the test waits. */
const TIMEOUTS = { HTTP_HEADERS_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '600' };
/** The bound for a test: a socket the server never closes ends it here, as a failure. */
const TEST_LIMIT_MS = 20_000;

/** A raw connection: writes `text`, then waits for the server to close it; resolves with what the server sent. */
function stall(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => undefined); // a reset is a close too
    socket.on('close', () => resolve(received));
    socket.on('connect', () => socket.write(text));
    socket.setTimeout(TEST_LIMIT_MS, () => {
      socket.destroy();
      reject(new Error(`the server kept a stalled connection open; it sent: ${JSON.stringify(received)}`));
    });
  });
}

/** What a closed stalled request may have been told before the close: nothing, or a 408. */
function expectClosedOrTimedOut(received: string) {
  if (received) expect(received).toMatch(/^HTTP\/1\.1 408 /);
}

describe.each(DATABASES)('slow clients (%s)', (kind) => {
  let running: Awaited<ReturnType<typeof start>>;
  let drop: () => Promise<void>;
  let url: string;

  beforeAll(async () => {
    const database = await processDatabase(kind, 'slow');
    drop = database.drop;
    const config = loadConfig({
      ...database.env,
      PORT: '0',
      HOST: '127.0.0.1',
      ADMIN_TOKEN,
      LOG_LEVEL: 'silent',
      DEMO: 'off',
      ...TIMEOUTS,
    });
    running = await start(config);
    url = `http://127.0.0.1:${running.port}`;
  }, 60_000);
  afterAll(async () => {
    await running?.stop();
    await drop?.();
  });

  it(
    'closes a connection that sends half its headers and stalls',
    async () => {
      expectClosedOrTimedOut(await stall(running.port, 'GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '));
    },
    TEST_LIMIT_MS + 5000,
  );

  it(
    'closes a connection that sends its headers and half a body, then stalls',
    async () => {
      const head = 'POST /v1/clicks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n';
      expectClosedOrTimedOut(await stall(running.port, `${head}{"key":"pk_`));
    },
    TEST_LIMIT_MS + 5000,
  );

  it(
    'closes stalled connections side by side, and serves normal requests meanwhile',
    async () => {
      const stalled = Array.from({ length: 5 }, (_, i) =>
        stall(
          running.port,
          i % 2
            ? 'GET /r/ABC HTTP/1.1\r\nHost: 127.0.0.1\r\n'
            : 'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 50\r\n\r\n{',
        ),
      );
      const ready = await fetch(`${url}/v1/ready`);
      expect(ready.status).toBe(200);
      const created = await fetch(`${url}/v1/programs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Slow shop', origins: ['https://slow.example'], landingUrl: 'https://slow.example/' }),
      });
      expect(created.status, await created.clone().text()).toBe(201);
      for (const received of await Promise.all(stalled)) expectClosedOrTimedOut(received);
      expect((await fetch(`${url}/v1/health`)).status).toBe(200);
    },
    TEST_LIMIT_MS + 5000,
  );
});
