/**
 * Programs: one referral program per site or product (a tenant), with its settings
 * and keys.
 */
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import type { ProgramResponse } from '../../../shared/responses.ts';
import { ProgramSettingsSchema, type ProgramCreate, type ProgramSettings, type ProgramUpdate } from '../../../shared/schemas.ts';
import { fieldsFromZod, unprocessable, validationFailed } from '../errors.ts';
import { createApiKey } from './keys.ts';
import { mergeEmailSettings } from './emails.ts';
import { checkWebhookUrl, type WebhookTargetPolicy } from './webhookTargets.ts';

export interface ProgramRow {
  id: string;
  slug: string;
  name: string;
  settings: ProgramSettings;
  /** Signs outgoing webhooks. */
  webhook_secret: string;
  created_at: Date;
  updated_at: Date;
}

function slugify(name: string): string {
  const base = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return base || 'program';
}

/** Validates settings as a whole (defaults applied); field errors are prefixed with `settings.`. */
export function validateSettings(input: unknown): ProgramSettings {
  const result = ProgramSettingsSchema.safeParse(input);
  if (!result.success) throw validationFailed(result.error, 'settings');
  return result.data;
}

/** Creates a program and both its keys; the keys are returned in clear once. */
export async function createProgram(db: Knex, input: ProgramCreate, targets: ProgramPolicy = { allowPrivate: false }) {
  const result = ProgramSettingsSchema.safeParse({ ...input.settings, origins: input.origins, landingUrl: input.landingUrl });
  if (!result.success) {
    // origins and landingUrl sit at the top of the request, the rest under settings.
    const fields = Object.fromEntries(
      Object.entries(fieldsFromZod(result.error)).map(([key, message]) => [
        /^(origins|landingUrl)(\.|$)/.test(key) ? key : `settings.${key}`,
        message,
      ]),
    );
    throw unprocessable('validation_failed', 'The request is not valid; see fields', fields);
  }
  const settings = result.data;
  await checkWebhookUrl(settings.webhookUrl, targets);
  checkWindowAgainstRetention(settings, targets.clickRetentionDays);
  return db.transaction(async (trx) => {
    const base = slugify(input.name);
    let program: ProgramRow | undefined;
    for (let attempt = 0; !program; attempt++) {
      const slug = attempt === 0 ? base : `${base}-${randomBytes(3).toString('hex')}`;
      const result = await trx.raw(
        `insert into programs (slug, name, settings) values (?, ?, ?::jsonb) on conflict (slug) do nothing returning *`,
        [slug, input.name, JSON.stringify(settings)],
      );
      program = result.rows[0] as ProgramRow | undefined;
    }
    const publishable = await createApiKey(trx, program.id, 'publishable');
    const secret = await createApiKey(trx, program.id, 'secret');
    return { program, keys: { publishable: publishable.key, secret: secret.key } };
  });
}

/** Merges a settings patch over the stored settings and validates the result. */
export async function updateProgram(
  db: Knex,
  program: ProgramRow,
  patch: ProgramUpdate,
  targets: ProgramPolicy = { allowPrivate: false },
): Promise<ProgramRow> {
  // Nested objects merge too: patching fraud.disposableDomains keeps the velocity settings.
  const settings = patch.settings
    ? validateSettings({
        ...program.settings,
        ...patch.settings,
        ...(patch.settings.fraud ? { fraud: { ...program.settings.fraud, ...patch.settings.fraud } } : {}),
        ...(patch.settings.emails !== undefined ? { emails: mergeEmailSettings(program.settings.emails, patch.settings.emails) } : {}),
        // Secrets are never shown back, so a patch of one provider key keeps the other.
        ...(isObject(patch.settings.stripe) ? { stripe: { ...program.settings.stripe, ...patch.settings.stripe } } : {}),
        ...(isObject(patch.settings.paddle) ? { paddle: { ...program.settings.paddle, ...patch.settings.paddle } } : {}),
        ...(isObject(patch.settings.lemonsqueezy)
          ? { lemonsqueezy: { ...program.settings.lemonsqueezy, ...patch.settings.lemonsqueezy } }
          : {}),
      })
    : program.settings;
  if (patch.settings?.webhookUrl !== undefined) await checkWebhookUrl(settings.webhookUrl, targets);
  checkWindowAgainstRetention(settings, targets.clickRetentionDays);
  const [row] = await db('programs')
    .where({ id: program.id })
    .update({ name: patch.name ?? program.name, settings: JSON.stringify(settings), updated_at: db.fn.now() })
    .returning('*');
  return row as ProgramRow;
}

export async function findProgram(db: Knex, id: string): Promise<ProgramRow | undefined> {
  return (await db('programs').where({ id }).first()) as ProgramRow | undefined;
}

export async function findProgramBySlug(db: Knex, slug: string): Promise<ProgramRow | undefined> {
  return (await db('programs').where({ slug }).first()) as ProgramRow | undefined;
}

/** The program as the API shows it; secrets inside settings are masked. */
export function presentProgram(program: ProgramRow): ProgramResponse {
  const { stripe, paddle, lemonsqueezy, ...settings } = program.settings;
  return {
    id: program.id,
    slug: program.slug,
    name: program.name,
    settings: {
      ...settings,
      ...(stripe ? { stripe: maskSecrets(stripe) } : {}),
      ...(paddle ? { paddle: maskSecrets(paddle) } : {}),
      ...(lemonsqueezy ? { lemonsqueezy: maskSecrets(lemonsqueezy) } : {}),
    },
    webhookSecret: program.webhook_secret,
    createdAt: program.created_at.toISOString(),
    updatedAt: program.updated_at.toISOString(),
  };
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Secrets shown as their first characters only. */
const maskSecrets = (secrets: Record<string, string | undefined>) =>
  Object.fromEntries(Object.entries(secrets).map(([name, value]) => [name, typeof value === 'string' ? `${value.slice(0, 6)}…` : value]));

/** What the collector's configuration asks of every program's settings. */
export type ProgramPolicy = WebhookTargetPolicy & {
  /** CLICK_RETENTION_DAYS: attribution by a visitor's clicks needs them kept as long as the window. */
  clickRetentionDays?: number | undefined;
};

function checkWindowAgainstRetention(settings: ProgramSettings, retentionDays: number | undefined): void {
  if (retentionDays !== undefined && settings.windowDays > retentionDays) {
    throw unprocessable('validation_failed', 'The request is not valid; see fields', {
      'settings.windowDays': `must be at most ${retentionDays}: clicks are kept ${retentionDays} days (CLICK_RETENTION_DAYS), and attribution by a visitor's clicks needs them for the whole window`,
    });
  }
}
