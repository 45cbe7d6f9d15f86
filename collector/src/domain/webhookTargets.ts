/**
 * Where outgoing webhooks may go: public unicast addresses only (DESIGN "Trust rules").
 * Otherwise a program owner could point settings.webhookUrl at 127.0.0.1:6379 or the
 * cloud metadata address and read the outcome in GET /v1/webhooks/deliveries.
 *
 * Checked when the URL is set (`checkWebhookUrl`), and on every delivery inside the
 * socket's own DNS lookup (`guardedLookup`): the address checked is the address
 * connected to, so a name cannot answer a public address to the check and 127.0.0.1
 * to the connection (DNS rebinding). ipaddr.js classifies the addresses; IPv4-mapped
 * IPv6 is judged as the IPv4 it carries, and anything not `unicast` is refused.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { unprocessable } from '../errors.ts';

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Every address a host name resolves to (dns.lookup; tests inject their own). */
export type Resolve = (hostname: string) => Promise<ResolvedAddress[]>;

export interface WebhookTargetPolicy {
  /** WEBHOOK_ALLOW_PRIVATE: this machine and private networks are allowed (local development). */
  allowPrivate: boolean;
  resolve?: Resolve | undefined;
}

/** A target that will never be allowed: the delivery fails at once instead of retrying. */
export class RefusedWebhookTarget extends Error {
  constructor(reason: string) {
    super(`refused: ${reason}`);
    this.name = 'RefusedWebhookTarget';
  }
}

const systemResolve: Resolve = (hostname) => dnsLookup(hostname, { all: true });

/** A name that does not answer quickly when set is accepted: each delivery checks it again. */
const SET_TIME_LOOKUP_MS = 3_000;

const RANGE_NAMES: Record<string, string> = {
  loopback: 'a loopback address',
  private: 'a private address',
  linkLocal: 'a link-local address',
  uniqueLocal: 'a unique-local address',
  unspecified: 'the unspecified address',
  carrierGradeNat: 'a carrier-grade NAT address',
  broadcast: 'a broadcast address',
  multicast: 'a multicast address',
  reserved: 'a reserved address',
};

/** What kind of address `ip` is when it may not receive webhooks; undefined for a public unicast one. */
function refusedKind(ip: string): string | undefined {
  if (!ipaddr.isValid(ip)) return 'not an address that can be checked';
  const range = ipaddr.process(ip).range();
  if (range === 'unicast') return undefined;
  return RANGE_NAMES[range] ?? `in the special-purpose ${range} range`;
}

/** The address as written, with the IPv4 an IPv4-mapped IPv6 address carries: `::ffff:7f00:1 (127.0.0.1)`. */
function shown(ip: string): string {
  const processed = ipaddr.isValid(ip) ? ipaddr.process(ip).toString() : ip;
  return processed === ip ? ip : `${ip} (${processed})`;
}

/** `localhost` and `*.localhost` always mean this machine (RFC 6761), whatever DNS says. */
const isLocalhostName = (host: string) => /(^|\.)localhost\.*$/.test(host);

/** The URL's host without IPv6 brackets (the URL parser has already normalised 2130706433 and 0x7f.1 to 127.0.0.1). */
const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1');

/** Why the host is refused without asking DNS (an IP literal or a localhost name); undefined otherwise. */
function refusedWithoutLookup(host: string): string | undefined {
  if (isIP(host) || ipaddr.isValid(host)) {
    const kind = refusedKind(host);
    return kind && `${shown(host)} is ${kind}`;
  }
  return isLocalhostName(host) ? `${host} is a loopback name` : undefined;
}

/** Why a name is refused: any refused address refuses it, since the connection may use any of them. */
function refusedAnswer(host: string, addresses: ResolvedAddress[]): string | undefined {
  for (const { address } of addresses) {
    const kind = refusedKind(address);
    if (kind) return `${host} resolves to ${shown(address)}, ${kind}`;
  }
  return undefined;
}

async function resolveQuickly(resolve: Resolve, host: string): Promise<ResolvedAddress[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ResolvedAddress[]>((done) => {
    timer = setTimeout(() => done([]), SET_TIME_LOOKUP_MS);
    timer.unref();
  });
  try {
    return await Promise.race([resolve(host).catch(() => []), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Refuses (422 on `settings.webhookUrl`) a webhook URL that points at this machine or a
 * private network. A name that does not resolve now is accepted: every delivery checks again.
 */
export async function checkWebhookUrl(url: string | undefined, policy: WebhookTargetPolicy): Promise<void> {
  if (!url || policy.allowPrivate) return;
  const host = hostOf(new URL(url));
  const reason =
    refusedWithoutLookup(host) ??
    (isIP(host) || ipaddr.isValid(host) ? undefined : refusedAnswer(host, await resolveQuickly(policy.resolve ?? systemResolve, host)));
  if (!reason) return;
  throw unprocessable('validation_failed', 'The request is not valid; see fields', {
    'settings.webhookUrl': `${reason}: webhooks go to public addresses only. Use a public URL, or set WEBHOOK_ALLOW_PRIVATE=1 on the collector for local development`,
  });
}

/**
 * The `lookup` to connect to `url` with (node:http's request option). Throws
 * RefusedWebhookTarget at once for a refused IP literal, which node connects to
 * without any lookup; for names, the lookup resolves, refuses the name when any
 * address is refused, and hands only checked addresses to the socket.
 */
export function guardedLookup(url: URL, policy: WebhookTargetPolicy): LookupFunction {
  const host = hostOf(url);
  const refused = policy.allowPrivate ? undefined : refusedWithoutLookup(host);
  if (refused) throw new RefusedWebhookTarget(refused);
  const resolve = policy.resolve ?? systemResolve;
  return (hostname, options, callback) => {
    const checked = async () => {
      if (!policy.allowPrivate && isLocalhostName(hostname)) throw new RefusedWebhookTarget(`${hostname} is a loopback name`);
      const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
      const addresses = (await resolve(hostname)).filter((answer) => !family || answer.family === family);
      const first = addresses[0];
      if (!first) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
      const reason = policy.allowPrivate ? undefined : refusedAnswer(hostname, addresses);
      if (reason) throw new RefusedWebhookTarget(reason);
      return { addresses, first };
    };
    checked().then(
      ({ addresses, first }) => (options.all ? callback(null, addresses) : callback(null, first.address, first.family)),
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}
