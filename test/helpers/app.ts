/**
 * HTTP through the real app: the Koa app on an ephemeral loopback port, driven with fetch
 * (and the same client for a collector started as a process).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { buildApp } from '../../collector/src/app.ts';
import { loadConfig, type Config } from '../../collector/src/config.ts';
import { createLogger } from '../../collector/src/logger.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
  text: string;
}

export interface RequestOptions {
  /** Bearer token (secret key or admin token). */
  auth?: string;
  headers?: Record<string, string>;
  /** Raw body, sent as is (no JSON encoding). */
  raw?: string | Uint8Array;
  redirect?: 'manual' | 'follow';
}

/** Requests to one base URL, answers parsed when they are JSON. */
export interface HttpClient {
  url: string;
  request: <T = any>(method: string, path: string, body?: unknown, options?: RequestOptions) => Promise<Reply<T>>;
  get: <T = any>(path: string, options?: RequestOptions) => Promise<Reply<T>>;
  post: <T = any>(path: string, body?: unknown, options?: RequestOptions) => Promise<Reply<T>>;
  patch: <T = any>(path: string, body?: unknown, options?: RequestOptions) => Promise<Reply<T>>;
}

export interface TestApp extends HttpClient {
  config: Config;
  /** The Koa app itself (its routers, for tests that read the routing table). */
  app: ReturnType<typeof buildApp>;
  server: Server;
  close: () => Promise<void>;
}

/** A client for `url`: JSON bodies encoded, redirects not followed (unless asked). */
export function httpClient(url: string): HttpClient {
  const request = async <T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<Reply<T>> => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.auth) headers.authorization = `Bearer ${options.auth}`;
    let payload: string | Uint8Array | undefined = options.raw;
    if (payload === undefined && body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(url + path, {
      method,
      headers,
      body: payload as BodyInit | undefined,
      redirect: options.redirect ?? 'manual',
    });
    const text = await response.text();
    let parsed: unknown = text;
    if ((response.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
    return { status: response.status, body: parsed as T, headers: response.headers, text };
  };
  return {
    url,
    request,
    get: (path, options) => request('GET', path, undefined, options),
    post: (path, body, options) => request('POST', path, body, options),
    patch: (path, body, options) => request('PATCH', path, body, options),
  };
}

export async function startTestApp(db: Knex, env: Record<string, string> = {}): Promise<TestApp> {
  // Suites fire many requests from 127.0.0.1: limits are high unless a test sets its own.
  const config = loadConfig({
    ADMIN_TOKEN,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    IP_HASH_SECRET: 'test-ip-hash-secret-0123456789',
    RATE_LIMIT_PUBLIC_PER_MINUTE: '1000000',
    RATE_LIMIT_SERVER_PER_MINUTE: '1000000',
    RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE: '1000000',
    ...env,
  });
  const app = buildApp({ db, config, logger: createLogger(config.logLevel) });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  config.publicUrl = url;
  return {
    ...httpClient(url),
    config,
    app,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
