import type { z } from 'zod';
import { badRequest, fieldsFromZod, validationFailed } from '../errors.ts';

/** The one validation helper for bodies: parses `input` or throws a 422 with field messages. */
export function parse<S extends z.ZodType>(schema: S, input: unknown, prefix?: string): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw validationFailed(result.error, prefix);
  return result.data;
}

/** Query strings: a bad value makes the request itself wrong, so 400 (with field messages). */
export function parseQuery<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw badRequest('invalid_query', 'The query string is not valid; see fields', fieldsFromZod(result.error));
  return result.data;
}
