import type { BuildOptions } from 'esbuild';

export function snippetBuildOptions(format: 'iife' | 'esm'): BuildOptions & { write: false };

export function portalEmbedBuildOptions(): BuildOptions & { write: false };
