/**
 * One error shape for every answer: `{ error: { code, message, fields? } }`.
 * Domain code throws these through the factories below; the error middleware
 * turns them (and anything else) into a response. 5xx bodies never leak internals.
 */
import type { z } from 'zod';

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields?: Record<string, string>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'AppError';
  }

  toBody() {
    return { error: { code: this.code, message: this.message, ...(this.fields ? { fields: this.fields } : {}) } };
  }
}

export const badRequest = (code: string, message: string, fields?: Record<string, string>) => new AppError(400, code, message, fields);

export const unauthorized = (message = 'A valid API key is required') =>
  new AppError(401, 'unauthorized', message, undefined, { 'WWW-Authenticate': 'Bearer' });

export const forbidden = (message: string) => new AppError(403, 'forbidden', message);

export const notFound = (what: string) => new AppError(404, 'not_found', `${what} not found`);

export const conflict = (code: string, message: string) => new AppError(409, code, message);

export const payloadTooLarge = (limit: number) => new AppError(413, 'payload_too_large', `Request bodies are limited to ${limit} bytes`);

export const unprocessable = (code: string, message: string, fields?: Record<string, string>) => new AppError(422, code, message, fields);

export const tooManyRequests = (retryAfterSeconds: number) =>
  new AppError(429, 'rate_limited', 'Too many requests; slow down', undefined, {
    'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))),
  });

export const unavailable = (message = 'The service is temporarily unavailable; retry shortly', retryAfterSeconds = 2) =>
  new AppError(503, 'unavailable', message, undefined, { 'Retry-After': String(retryAfterSeconds) });

/** Field-level messages from a zod error, keyed by dotted path (`rewardRules.0.reward.amount`). */
export function fieldsFromZod(error: z.ZodError, prefix?: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of error.issues) {
    const key = [prefix, ...issue.path.map(String)].filter((part) => part !== undefined && part !== '').join('.') || '_';
    fields[key] ??= issue.message;
  }
  return fields;
}

export const validationFailed = (error: z.ZodError, prefix?: string) =>
  unprocessable('validation_failed', 'The request is not valid; see fields', fieldsFromZod(error, prefix));
