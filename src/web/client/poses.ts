import { get } from './api'
import { byId, debounce, h } from './dom'
import { sentence } from './errors'
import { stickFigure } from './figure'
import type { Category, Page, Pose } from './types'

/**
 * The pose library as a picker: a search box (name or tag), tag chips (all
 * pressed tags must match), a category filter, pages of poses (each a
 * checkbox whose label is its stick figure and name) and "More poses".
 * Selections survive filtering; names are kept for the gallery's alt text.
 *
 * Page loads: idle ──filter/search/more──▶ loading ──page in──▶ idle; a
 * filter changed while loading marks `again`, and one reload follows.
 */
const PAGE = 24
export const MAX_POSES = 20
/** Chips offered: the tags most common in the first page of the whole library. */
const CHIPS = 10

export type PosePicker = ReturnType<typeof makePosePicker>

export type PosePickerDeps = {
  /** The selection changed. */
  onChange: () => void
}

/** The picker's elements, filters, selection and page cursor. */
type Picker = {
  deps: PosePickerDeps
  el: ReturnType<typeof pickerElements>
  /** Pressed tag chips. */
  tags: Set<string>
  selected: Set<string>
  names: Map<string, string>
  cursor: string | null
  loading: boolean
  /** A search typed while a page loads runs when that page is in. */
  again: boolean
}

export function makePosePicker(deps: PosePickerDeps) {
  const p: Picker = {
    deps,
    el: pickerElements(),
    tags: new Set(),
    selected: new Set(),
    names: new Map(),
    cursor: null,
    loading: false,
    again: false,
  }
  p.el.category.addEventListener('change', () => void loadPage(p, true))
  // one request per pause in typing, not per key
  p.el.search.addEventListener(
    'input',
    debounce(() => void loadPage(p, true), 250),
  )
  p.el.more.addEventListener('click', () => void loadPage(p, false))

  return {
    async load() {
      await Promise.all([
        loadCategories(p).catch(() => {}),
        loadTags(p).catch(() => {}),
        loadPage(p, true),
      ])
    },
    selected: () => [...p.selected],
    nameOf: (id: string) => p.names.get(id),
    clear() {
      p.selected.clear()
      p.el.list.querySelectorAll<HTMLInputElement>('input.pose-check').forEach((box) => {
        box.checked = false
      })
      deps.onChange()
    },
  }
}

function pickerElements() {
  return {
    list: byId<HTMLUListElement>('poses'),
    more: byId<HTMLButtonElement>('more-poses'),
    category: byId<HTMLSelectElement>('category'),
    status: byId('poses-status'),
    search: byId<HTMLInputElement>('pose-search'),
    chips: byId('tag-chips'),
  }
}

async function loadCategories(p: Picker) {
  const { items } = await get<{ items: Category[] }>('/v1/library/categories')
  p.el.category.replaceChildren(
    h('option', { value: '' }, 'All categories'),
    ...items.map((c) => h('option', { value: c.id }, `${c.name} (${c.poseCount})`)),
  )
}

async function loadTags(p: Picker) {
  const { items } = await get<Page<Pose>>('/v1/library/poses?limit=100')
  const counts = new Map<string, number>()
  for (const pose of items) for (const tag of pose.tags) counts.set(tag, (counts.get(tag) ?? 0) + 1)
  const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, CHIPS)
  p.el.chips.replaceChildren(...top.map(([tag]) => chip(p, tag)))
}

function chip(p: Picker, tag: string): HTMLButtonElement {
  const button = h(
    'button',
    { type: 'button', class: 'chip', 'aria-pressed': String(p.tags.has(tag)), 'data-tag': tag },
    tag,
  )
  button.addEventListener('click', () => {
    if (p.tags.has(tag)) p.tags.delete(tag)
    else p.tags.add(tag)
    button.setAttribute('aria-pressed', String(p.tags.has(tag)))
    void loadPage(p, true)
  })
  return button
}

async function loadPage(p: Picker, reset: boolean) {
  const { el } = p
  if (p.loading) {
    p.again ||= reset
    return
  }
  p.loading = true
  el.more.disabled = true
  el.status.textContent = 'Loading poses…'
  try {
    const text = el.search.value.trim()
    const page = await get<Page<Pose>>(`/v1/library/poses?${pageQuery(p, text, reset)}`)
    if (reset) el.list.replaceChildren()
    el.list.append(...page.items.map((pose) => poseItem(p, pose)))
    p.cursor = page.nextCursor
    const filtered = text !== '' || p.tags.size > 0
    el.status.textContent =
      el.list.children.length > 0
        ? ''
        : filtered
          ? 'No poses match this search.'
          : 'No poses in this category.'
  } catch (error) {
    el.status.textContent = `Poses could not be loaded. ${sentence(error, 'request')}`
  } finally {
    p.loading = false
    el.more.hidden = p.cursor === null
    el.more.disabled = false
  }
  if (p.again) {
    p.again = false
    await loadPage(p, true)
  }
}

function pageQuery(p: Picker, text: string, reset: boolean) {
  const query = new URLSearchParams({ limit: String(PAGE) })
  if (p.el.category.value) query.set('category', p.el.category.value)
  if (text) query.set('q', text.slice(0, 100))
  for (const tag of p.tags) query.append('tag', tag)
  if (!reset && p.cursor) query.set('cursor', p.cursor)
  return query
}

/** A pose as a checkbox labelled by its stick figure and name; at most MAX_POSES checked. */
function poseItem(p: Picker, pose: Pose): HTMLLIElement {
  p.names.set(pose.id, pose.name)
  const box = h('input', { type: 'checkbox', name: 'pose', value: pose.id, class: 'pose-check' })
  box.checked = p.selected.has(pose.id)
  box.addEventListener('change', () => {
    if (box.checked && p.selected.size >= MAX_POSES) {
      box.checked = false
      p.el.status.textContent = `You can pick up to ${MAX_POSES} poses per generation.`
      return
    }
    if (box.checked) p.selected.add(pose.id)
    else p.selected.delete(pose.id)
    p.deps.onChange()
  })
  const meta = `${pose.category}, ${pose.difficulty}`
  return h(
    'li',
    { class: 'pose' },
    h(
      'label',
      {},
      box,
      stickFigure(pose.keypoints, `Stick figure of ${pose.name}`),
      h('span', { class: 'pose-name' }, pose.name),
      h('span', { class: 'pose-meta' }, meta),
    ),
  )
}
