import type { Knex } from 'knex';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import type { Ingest } from './ingest.ts';
import type { RateLimits } from './http/rateLimit.ts';
import type { Lifecycle } from './http/middleware.ts';

/** What the routes are built from: everything present. */
export interface Deps {
  db: Knex;
  config: Config;
  logger: Logger;
  /** Group-commit batchers (the server passes its own, to drain them on shutdown). */
  ingest: Ingest;
  /** Rate limiters. */
  limits: RateLimits;
  /** Set by the server on SIGTERM: new requests are refused while in-flight ones finish. */
  lifecycle?: Lifecycle;
}

/** What `buildApp` takes: the batchers and limiters are built from config when not given (tests). */
export type AppInput = Omit<Deps, 'ingest' | 'limits'> & Partial<Pick<Deps, 'ingest' | 'limits'>>;
