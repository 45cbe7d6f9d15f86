import type { Knex } from 'knex';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';

/** What the app is built from; tests pass their own. */
export interface Deps {
  db: Knex;
  config: Config;
  logger: Logger;
}
