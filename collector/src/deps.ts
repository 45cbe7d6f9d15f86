import type { Knex } from 'knex';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import type { Ingest } from './ingest.ts';
import type { RateLimits } from './http/rateLimit.ts';
import type { Lifecycle } from './http/middleware.ts';

/** What the app is built from; tests pass their own. */
export interface Deps {
  db: Knex;
  config: Config;
  logger: Logger;
  /** Group-commit batchers; built by the app when not given (the server passes its own to drain them). */
  ingest?: Ingest;
  /** Rate limiters; built from config when not given. */
  limits?: RateLimits;
  /** Set by the server on SIGTERM: new requests are refused while in-flight ones finish. */
  lifecycle?: Lifecycle;
}
