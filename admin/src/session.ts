/**
 * The secret key lives in sessionStorage only: it survives a reload of this tab
 * and is gone when the tab closes. It is never put in a URL or logged.
 */
const STORAGE_KEY = 'referral-admin-key';

/** Fallback when storage is disabled: the key then lasts as long as the page. */
let memoryKey: string | null = null;

export function readKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? memoryKey;
  } catch {
    return memoryKey;
  }
}

export function saveKey(key: string): void {
  memoryKey = key;
  try {
    sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // Storage disabled: memoryKey holds it.
  }
}

export function clearKey(): void {
  memoryKey = null;
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing stored
  }
}
