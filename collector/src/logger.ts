import { pino, type DestinationStream, type Logger } from 'pino';

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

/** Logs to stdout, or to `destination` (tests read what would have been written). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: undefined };
  return destination ? pino(options, destination) : pino(options);
}
