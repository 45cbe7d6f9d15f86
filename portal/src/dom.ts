/**
 * DOM helpers. Data goes in as text (textContent, attributes), never as HTML.
 */

export type Child = Node | string | number | null | undefined | false;

/** Creates an element with attributes (`class` sets the class list) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | undefined> = {},
  children: Child[] = [],
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined) continue;
    if (name === 'class') node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'object' ? child : String(child));
  }
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element with presentation attributes (which the CSP allows, unlike style attributes). */
export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

/** The element with this id; a missing one is a bug in index.html. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from the page`);
  return node as T;
}

/** Shows a short message in a status line for a few seconds (or until replaced). */
export function flash(node: HTMLElement, text: string, ms = 4000): void {
  node.textContent = text;
  node.hidden = false;
  const shown = text;
  setTimeout(() => {
    if (node.textContent === shown) node.hidden = true;
  }, ms);
}
