/**
 * A local stand-in of the Stripe API (Stripe cannot be reached from here), for the
 * official SDK pointed at it through its host/port options (`STRIPE_API_URL`). It
 * answers `POST /v1/transfers` as Stripe does — a transfer object, or an error body
 * with its HTTP status — keeps every request it received with its Idempotency-Key, and
 * replays the first answer for a key it has seen, as Stripe does.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StripeRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The form-encoded body, decoded (`metadata[payout]` keys kept as they are). */
  form: Record<string, string>;
  idempotencyKey: string | undefined;
}

export interface StripeStandIn {
  url: string;
  requests: StripeRequest[];
  /** Destinations whose transfers Stripe refuses (400, as for an account without the transfers capability). */
  refuse: Set<string>;
  close: () => Promise<void>;
}

export async function startStripeStandIn(): Promise<StripeStandIn> {
  const requests: StripeRequest[] = [];
  const refuse = new Set<string>();
  const answered = new Map<string, { status: number; body: string }>();
  let counter = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      const idempotencyKey = req.headers['idempotency-key'] as string | undefined;
      requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, form, idempotencyKey });
      const send = ({ status, body }: { status: number; body: string }) =>
        res
          .writeHead(status, {
            'content-type': 'application/json',
            'request-id': `req_${++counter}`,
            'stripe-version': '2025-09-30.clover',
          })
          .end(body);
      const replay = idempotencyKey ? answered.get(idempotencyKey) : undefined;
      if (replay) {
        send(replay);
        return;
      }
      let answer: { status: number; body: string };
      if (req.method === 'POST' && req.url === '/v1/transfers') {
        const destination = form.destination ?? '';
        answer = refuse.has(destination)
          ? {
              status: 400,
              body: JSON.stringify({
                error: {
                  code: 'insufficient_capabilities_for_transfer',
                  message: `Your destination account needs to have at least one of the following capabilities enabled: transfers, crypto_transfers, legacy_payments`,
                  param: 'destination',
                  request_log_url: 'https://dashboard.stripe.com/test/logs/req_x',
                  type: 'invalid_request_error',
                },
              }),
            }
          : {
              status: 200,
              body: JSON.stringify({
                id: `tr_${String(++counter).padStart(24, '0')}`,
                object: 'transfer',
                amount: Number(form.amount),
                amount_reversed: 0,
                balance_transaction: `txn_${counter}`,
                created: Math.floor(Date.now() / 1000),
                currency: form.currency,
                description: form.description ?? null,
                destination,
                destination_payment: `py_${counter}`,
                livemode: false,
                metadata: Object.fromEntries(
                  Object.entries(form)
                    .filter(([key]) => key.startsWith('metadata['))
                    .map(([key, value]) => [key.slice(9, -1), value]),
                ),
                reversals: { object: 'list', data: [], has_more: false, total_count: 0, url: `/v1/transfers/tr_${counter}/reversals` },
                reversed: false,
                source_transaction: null,
                source_type: 'card',
                transfer_group: form.transfer_group ?? null,
              }),
            };
      } else {
        answer = {
          status: 404,
          body: JSON.stringify({
            error: { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${req.url})` },
          }),
        };
      }
      if (idempotencyKey) answered.set(idempotencyKey, answer);
      send(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    refuse,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
