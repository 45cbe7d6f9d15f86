/**
 * CSV cells: RFC 4180 quoting, and text that a spreadsheet would read as a formula
 * is neutralised with a leading apostrophe: text starting with = + - @, tab, CR or
 * LF, and = + - @ behind leading whitespace or line breaks (spreadsheets skip those
 * before a formula: OWASP "CSV Injection"). Numbers are written as numbers.
 */
const FORMULA_START = /^(?:[\t\r\n]|\s*[=+\-@])/;

export type Cell = string | number | boolean | Date | null | undefined;

export function csvCell(value: Cell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  let text = value instanceof Date ? value.toISOString() : value;
  if (FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvRow(values: Cell[]): string {
  return `${values.map(csvCell).join(',')}\r\n`;
}
