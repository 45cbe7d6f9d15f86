/**
 * A few DOM helpers. Data always goes in as text (textContent, attributes),
 * never as HTML.
 */

export type Child = Node | string | number | null | undefined | false;
export type Attrs = Record<string, string | number | boolean | null | undefined>;

/** Creates an element; `class` sets the class list, other attributes are set as given (true → present). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  children: Child | Child[] = [],
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = String(value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

export function append(parent: Node, children: Child | Child[]): void {
  for (const child of Array.isArray(children) ? children : [children]) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** The element with this id; a missing one is a bug in index.html, so it throws. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from the page`);
  return node as T;
}

export function show(node: HTMLElement, visible: boolean): void {
  node.hidden = !visible;
}

/** Replaces a node's content with plain text. */
export function setText(node: HTMLElement, text: string): void {
  node.textContent = text;
}

/** A message inside a panel, coloured by kind (`data-kind`); an empty one hides it. */
export function showMessage(node: HTMLElement, text: string, kind: 'error' | 'info' = 'info'): void {
  node.textContent = text;
  node.dataset.kind = kind;
  node.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  node.hidden = !text;
}
