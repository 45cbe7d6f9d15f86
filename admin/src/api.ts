/**
 * Same-origin calls to the collector API with the secret key in the
 * Authorization header: never in a URL, never logged. Every failure becomes an
 * ApiError carrying the API's `{ error: { code, message, fields? } }`.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export type Query = Record<string, string | number | null | undefined>;

export interface Api {
  get<T>(path: string, query?: Query): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  patch<T>(path: string, body: unknown): Promise<T>;
  /** A file download: the body as a Blob and the server's file name, if any. */
  download(path: string): Promise<{ blob: Blob; filename: string | null }>;
}

export interface ApiOptions {
  /** The current secret key, or null when signed out. */
  key: () => string | null;
  /** Called on any 401: the key is wrong or was revoked. */
  onUnauthorized: (message: string) => void;
}

function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(name, String(value));
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

async function errorFrom(response: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  const error = (body as { error?: { code?: unknown; message?: unknown; fields?: unknown } } | undefined)?.error;
  const fields = error?.fields && typeof error.fields === 'object' ? (error.fields as Record<string, string>) : {};
  const message =
    typeof error?.message === 'string' ? error.message : `The server answered ${response.status} ${response.statusText}`.trim();
  const code = typeof error?.code === 'string' ? error.code : 'http_error';
  return new ApiError(response.status, code, message, fields);
}

export function createApi(options: ApiOptions): Api {
  async function send(method: string, path: string, body?: unknown, accept = 'application/json'): Promise<Response> {
    const key = options.key();
    if (!key) {
      options.onUnauthorized('Sign in with your secret key.');
      throw new ApiError(401, 'unauthorized', 'Not signed in');
    }
    const headers: Record<string, string> = { authorization: `Bearer ${key}`, accept };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new ApiError(0, 'network_error', 'The server could not be reached; check your connection and retry.');
    }
    if (response.ok) return response;
    const error = await errorFrom(response);
    if (response.status === 401) options.onUnauthorized(error.message);
    throw error;
  }

  async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await send(method, path, body);
    return (await response.json()) as T;
  }

  return {
    get: (path, query) => json('GET', withQuery(path, query)),
    post: (path, body) => json('POST', path, body),
    patch: (path, body) => json('PATCH', path, body),
    async download(path) {
      const response = await send('GET', path, undefined, 'text/csv, */*');
      const disposition = response.headers.get('content-disposition') ?? '';
      const filename = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition)?.[1] ?? null;
      return { blob: await response.blob(), filename: filename ? decodeURIComponent(filename) : null };
    },
  };
}
