/**
 * Test data through the real API, with `buildX(overrides)` factories.
 */
import { randomBytes } from 'node:crypto';
import type { ParticipantResponse, ProgramCreateResponse, ProgramResponse } from '../../shared/responses.ts';
import { ADMIN_TOKEN, type TestApp } from './app.ts';

export const uniq = (prefix = '') => `${prefix}${randomBytes(5).toString('hex')}`;

/** A fresh visitor id. */
export const newVid = () => uniq('vid_');

/** A visitor id for a name, the same each time, that the browser schema accepts (8–64 of [A-Za-z0-9_-]). */
export const vidFor = (name: string) =>
  `vid_${name}`
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .padEnd(8, '_')
    .slice(0, 64);

/** The settings a program gets when it is created without any. */
export const DEFAULT_SETTINGS = {
  origins: ['https://shop.example'],
  landingUrl: 'https://shop.example/welcome',
  cookieDays: 60,
  attribution: 'first',
  windowDays: 60,
  rewardRules: [],
  fraud: { velocityMax: 3, velocityMinutes: 60, disposableDomains: [] },
};

export interface ProgramFixture {
  id: string;
  slug: string;
  publishable: string;
  secret: string;
  program: ProgramResponse;
}

export async function buildProgram(api: TestApp, overrides: Record<string, unknown> = {}): Promise<ProgramFixture> {
  const reply = await api.post<ProgramCreateResponse>(
    '/v1/programs',
    { name: `Program ${uniq()}`, origins: ['https://shop.example'], landingUrl: 'https://shop.example/welcome', ...overrides },
    { auth: ADMIN_TOKEN },
  );
  if (reply.status !== 201) throw new Error(`buildProgram: ${reply.status} ${reply.text}`);
  return { id: reply.body.program.id, slug: reply.body.program.slug, program: reply.body.program, ...reply.body.keys };
}

export async function buildParticipant(api: TestApp, program: ProgramFixture, overrides: Record<string, unknown> = {}) {
  const reply = await api.post('/v1/participants', { externalId: uniq('user-'), ...overrides }, { auth: program.secret });
  if (reply.status !== 201 && reply.status !== 200) throw new Error(`buildParticipant: ${reply.status} ${reply.text}`);
  return reply.body as ParticipantResponse;
}
