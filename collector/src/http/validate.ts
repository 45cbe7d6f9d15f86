import type { z } from 'zod';
import { validationFailed } from '../errors.ts';

/** The one validation helper: parses `input` or throws a 422 with field messages. */
export function parse<S extends z.ZodType>(schema: S, input: unknown, prefix?: string): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw validationFailed(result.error, prefix);
  return result.data;
}
