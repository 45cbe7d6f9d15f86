/**
 * Where the package's files are, whether this runs from the TypeScript sources
 * (collector/src) or from the bundle `npm start` builds (collector/dist): both sit
 * two levels below the package root.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A path inside the package. */
export const packagePath = (...parts: string[]) => path.join(PACKAGE_ROOT, ...parts);
