/**
 * CSV cells: RFC 4180 quoting, and formula injection neutralised with a leading
 * apostrophe: text a spreadsheet would run (= + - @, tab, CR, LF), also after
 * leading whitespace or line breaks, which spreadsheets skip before a formula.
 */
import { describe, expect, it } from 'vitest';
import { csvCell, csvRow } from '../../collector/src/domain/csv.ts';

describe('csvCell', () => {
  const neutralised: Array<[string, string, string]> = [
    ['a formula', '=1+1', "'=1+1"],
    ['a plus', '+1', "'+1"],
    ['a minus', '-1', "'-1"],
    ['an at', '@SUM(A1)', "'@SUM(A1)"],
    ['a leading tab', '\tx', "'\tx"],
    ['a leading CR', '\rx', `"'\rx"`],
    ['a leading LF', '\nx', `"'\nx"`],
    ['a space, then a formula', ' =1+1', "' =1+1"],
    ['two spaces, then a plus', '  +1', "'  +1"],
    ['a tab, then a minus', '\t-2', "'\t-2"],
    ['LF, then a formula', '\n=cmd', `"'\n=cmd"`],
    ['CRLF, then an at', '\r\n@SUM', `"'\r\n@SUM"`],
    ['a no-break space, then a formula', '\u00a0=1', "'\u00a0=1"],
    ['a formula with a comma, quoted too', '=HYPERLINK("http://evil.example","x")', `"'=HYPERLINK(""http://evil.example"",""x"")"`],
  ];

  it.each(neutralised)('neutralises %s', (_label, input, expected) => {
    expect(csvCell(input)).toBe(expected);
  });

  const untouched: Array<[string, string, string]> = [
    ['plain text', 'alice', 'alice'],
    ['a leading space before a letter', ' alice', ' alice'],
    ['a formula character later on', 'a=1+1', 'a=1+1'],
    ['an email', 'bob@example.com', 'bob@example.com'],
    ['an inner line break, quoted', 'a\r\nb', '"a\r\nb"'],
    ['quotes and commas', 'Smith, "Bob"', '"Smith, ""Bob"""'],
    ['the empty string', '', ''],
  ];

  it.each(untouched)('keeps %s as it is', (_label, input, expected) => {
    expect(csvCell(input)).toBe(expected);
  });

  it('writes numbers (negative ones too), booleans, dates and nulls as values, never neutralised', () => {
    expect(csvCell(-1000)).toBe('-1000');
    expect(csvCell(0)).toBe('0');
    expect(csvCell(true)).toBe('true');
    expect(csvCell(new Date('2025-03-10T00:00:00Z'))).toBe('2025-03-10T00:00:00.000Z');
    expect(csvCell(null)).toBe('');
    expect(csvCell(undefined)).toBe('');
  });

  it('joins a row with commas and ends it with CRLF', () => {
    expect(csvRow(['a', ' =1', -5, null])).toBe("a,' =1,-5,\r\n");
  });
});
