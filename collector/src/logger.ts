import { pino, type Logger } from 'pino';

export type { Logger };

/** Keys, tokens and cookies never reach the logs. */
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["idempotency-key"]',
  'req.headers["stripe-signature"]',
  'body.key',
  'keys',
  '*.secret',
  '*.publishable',
];

export function createLogger(level: string): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: undefined });
}
