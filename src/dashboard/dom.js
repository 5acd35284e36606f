/**
 * Building the page without HTML strings: every text from the API goes in
 * through `textContent` (the `h` helper), never through `innerHTML`, so an
 * id or a message full of markup stays text.
 */

/**
 * An element: `h('a', { href: '#/', class: 'x', dataset: { jobId } }, 'text', child)`.
 * Attributes named `on…` with a function are listeners; `null`/`undefined`
 * attributes and children are skipped; strings and numbers become text nodes.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

/** The element with this id, created from `make()` and placed in `parent` the first time. */
export function slot(parent, id, make = () => h('section', { id })) {
  let el = parent.querySelector(`#${CSS.escape(id)}`);
  if (el === null) {
    el = make();
    parent.append(el);
  }
  return el;
}

/** A link to a route of the dashboard: each part is encoded. */
export function routeHref(...parts) {
  return `#/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`;
}

/** A `<dl>` from `[term, description]` pairs; a description may be a node. */
export function definitions(attrs, pairs) {
  return h('dl', attrs, ...pairs.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

/** A `<table>`: `columns` are `{ key, label, numeric? }`; `rows` are arrays of cells (text or nodes). */
export function table(attrs, columns, rows) {
  return h(
    'table',
    attrs,
    h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { class: c.numeric ? 'num' : null }, c.label)))),
    h('tbody', {}, ...rows),
  );
}

/** A table row; `cells` line up with `columns` (numeric columns align right). */
export function row(attrs, columns, cells) {
  return h('tr', attrs, ...cells.map((cell, i) => h('td', { class: columns[i]?.numeric ? 'num' : null }, cell)));
}
