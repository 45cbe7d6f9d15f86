/**
 * The portal's one API: `/v1/portal/me` on this origin, with the token from the
 * page's own address as `Authorization: Portal <token>`.
 */
import type { PortalResponse } from '../../shared/responses.ts';
import type { PortalUpdate } from '../../shared/schemas.ts';

/** An answer other than 2xx, with the API's error shape. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The token in /portal/<token>, or null. */
export function tokenFromLocation(): string | null {
  const match = /^\/portal\/([^/]+)$/.exec(location.pathname);
  return match?.[1] ? decodeURIComponent(match[1]) : null;
}

async function call(token: string, method: 'GET' | 'PATCH', body?: PortalUpdate): Promise<PortalResponse> {
  const response = await fetch('/v1/portal/me', {
    method,
    headers: { authorization: `Portal ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : null,
    cache: 'no-store',
    credentials: 'omit',
  });
  const data = (await response.json().catch(() => null)) as
    | (PortalResponse & { error?: { code: string; message: string; fields?: Record<string, string> } })
    | null;
  if (!response.ok || !data) {
    const error = data?.error;
    throw new ApiError(
      response.status,
      error?.code ?? 'network',
      error?.message ?? `The server answered ${response.status}`,
      error?.fields,
    );
  }
  return data;
}

export const loadPortal = (token: string) => call(token, 'GET');
export const savePortal = (token: string, changes: PortalUpdate) => call(token, 'PATCH', changes);
