import { describe, expect, it } from 'vitest';
import { CODE_ALPHABET, CODE_LENGTH, generateCode, referralLink } from '../../collector/src/domain/codes.ts';

const EXPECTED_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
const DRAWS = 20_000;

describe('generateCode', () => {
  const codes = Array.from({ length: DRAWS }, generateCode);

  it('uses the unambiguous alphabet: digits 2–9 and A–Z without I, L, O', () => {
    expect(CODE_ALPHABET).toBe(EXPECTED_ALPHABET);
    expect(new Set(CODE_ALPHABET).size).toBe(CODE_ALPHABET.length);
    expect(CODE_LENGTH).toBe(8);
  });

  it('draws 8 characters from the alphabet, never 0, O, 1, I, L or lower case', () => {
    for (const code of codes) {
      expect(code).toHaveLength(8);
      expect(code).toMatch(/^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$/);
    }
    const all = codes.join('');
    for (const forbidden of ['0', 'O', '1', 'I', 'L', 'o', 'i', 'l']) expect(all).not.toContain(forbidden);
  });

  it('spreads draws evenly over the alphabet and over every position', () => {
    const overall = new Map<string, number>();
    const perPosition = Array.from({ length: CODE_LENGTH }, () => new Map<string, number>());
    for (const code of codes) {
      [...code].forEach((char, position) => {
        overall.set(char, (overall.get(char) ?? 0) + 1);
        const counts = perPosition[position] as Map<string, number>;
        counts.set(char, (counts.get(char) ?? 0) + 1);
      });
    }
    // Every character shows up, at every position.
    expect([...overall.keys()].sort().join('')).toBe(EXPECTED_ALPHABET);
    for (const counts of perPosition) expect(counts.size).toBe(EXPECTED_ALPHABET.length);

    // Chi-square over 31 symbols (30 degrees of freedom): the 99.99th percentile is about 70.
    const expected = (DRAWS * CODE_LENGTH) / EXPECTED_ALPHABET.length;
    const chiSquare = [...overall.values()].reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
    expect(chiSquare).toBeLessThan(70);
    for (const count of overall.values()) expect(Math.abs(count - expected) / expected).toBeLessThan(0.1);
  });

  it('does not repeat itself', () => {
    // 31^8 ≈ 8.5e11 codes: a collision among 20 000 draws has odds of about 1 in 4000.
    expect(new Set(codes).size).toBeGreaterThanOrEqual(DRAWS - 1);
    const next = Array.from({ length: 100 }, generateCode);
    expect(new Set(next).size).toBe(100);
  });
});

describe('referralLink', () => {
  it('is PUBLIC_URL/r/CODE', () => {
    expect(referralLink('https://ref.example.com', 'K7M2XQ9A')).toBe('https://ref.example.com/r/K7M2XQ9A');
    expect(referralLink('http://localhost:8787', 'Alice_2024-x')).toBe('http://localhost:8787/r/Alice_2024-x');
  });

  it('keeps a base path and percent-encodes anything that is not URL-safe', () => {
    expect(referralLink('https://example.com/ref', 'abc')).toBe('https://example.com/ref/r/abc');
    expect(referralLink('https://example.com', 'a b/c?d#e')).toBe('https://example.com/r/a%20b%2Fc%3Fd%23e');
    const link = new URL(referralLink('https://example.com', 'x/../../admin'));
    expect(link.pathname).toBe('/r/x%2F..%2F..%2Fadmin');
  });

  it('gives a link that names the code the generator drew', () => {
    const code = generateCode();
    const link = new URL(referralLink('https://ref.example.com', code));
    expect(link.origin).toBe('https://ref.example.com');
    expect(decodeURIComponent(link.pathname.replace(/^\/r\//, ''))).toBe(code);
  });
});
