/** Tiny DOM helpers: build elements without innerHTML, so no server text is ever parsed as markup. */
type Attrs = Record<string, string | number | boolean | undefined | null>
type Child = Node | string | null | undefined | false

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  setAttrs(el, attrs)
  for (const child of children) if (child) el.append(child)
  return el
}

const SVG_NS = 'http://www.w3.org/2000/svg'

export function svg(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement
  setAttrs(el, attrs)
  for (const child of children) if (child) el.append(child)
  return el
}

function setAttrs(el: Element, attrs: Attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue
    el.setAttribute(name, value === true ? '' : String(value))
  }
}

/** The element with this id; a missing one is a bug in index.html, so it throws. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id)
  if (!el) throw new Error(`#${id} is missing from the page`)
  return el as T
}

/** Runs `fn` once, `ms` after the last call: a burst of events becomes one refresh. */
export function debounce(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined
  return () => {
    clearTimeout(timer)
    timer = setTimeout(fn, ms)
  }
}

const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' })
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' })

/** <time> as "Nov 22 4:17 AM", in two unbreakable halves: at most two lines in a narrow column. */
export function timeElement(iso: string): HTMLTimeElement {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return h('time', {}, iso)
  return h(
    'time',
    { datetime: iso },
    h('span', { class: 'nowrap' }, dayFormat.format(d)),
    ' ',
    h('span', { class: 'nowrap' }, timeFormat.format(d)),
  )
}
