export * from './responses.ts';
export * from './schemas.ts';
export * from './types.ts';
