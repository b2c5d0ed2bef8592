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
 */
const PAGE = 24
export const MAX_POSES = 20
/** Chips offered: the tags most common in the first page of the whole library. */
const CHIPS = 10

export type PosePicker = ReturnType<typeof makePosePicker>

export function makePosePicker(onChange: () => void) {
  const list = byId<HTMLUListElement>('poses')
  const more = byId<HTMLButtonElement>('more-poses')
  const category = byId<HTMLSelectElement>('category')
  const status = byId('poses-status')
  const search = byId<HTMLInputElement>('pose-search')
  const chips = byId('tag-chips')
  const tags = new Set<string>()
  const selected = new Set<string>()
  const names = new Map<string, string>()
  let cursor: string | null = null
  let loading = false
  // a search typed while a page loads runs when that page is in
  let again = false

  async function loadCategories() {
    const { items } = await get<{ items: Category[] }>('/v1/library/categories')
    category.replaceChildren(
      h('option', { value: '' }, 'All categories'),
      ...items.map((c) => h('option', { value: c.id }, `${c.name} (${c.poseCount})`)),
    )
  }

  async function loadTags() {
    const { items } = await get<Page<Pose>>('/v1/library/poses?limit=100')
    const counts = new Map<string, number>()
    for (const pose of items)
      for (const tag of pose.tags) counts.set(tag, (counts.get(tag) ?? 0) + 1)
    const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, CHIPS)
    chips.replaceChildren(...top.map(([tag]) => chip(tag)))
  }

  function chip(tag: string): HTMLButtonElement {
    const button = h(
      'button',
      { type: 'button', class: 'chip', 'aria-pressed': String(tags.has(tag)), 'data-tag': tag },
      tag,
    )
    button.addEventListener('click', () => {
      if (tags.has(tag)) tags.delete(tag)
      else tags.add(tag)
      button.setAttribute('aria-pressed', String(tags.has(tag)))
      void loadPage(true)
    })
    return button
  }

  async function loadPage(reset: boolean) {
    if (loading) {
      again ||= reset
      return
    }
    loading = true
    more.disabled = true
    status.textContent = 'Loading poses…'
    try {
      const query = new URLSearchParams({ limit: String(PAGE) })
      if (category.value) query.set('category', category.value)
      const text = search.value.trim()
      if (text) query.set('q', text.slice(0, 100))
      for (const tag of tags) query.append('tag', tag)
      if (!reset && cursor) query.set('cursor', cursor)
      const page = await get<Page<Pose>>(`/v1/library/poses?${query}`)
      if (reset) list.replaceChildren()
      list.append(...page.items.map(card))
      cursor = page.nextCursor
      const filtered = text !== '' || tags.size > 0
      status.textContent =
        list.children.length > 0
          ? ''
          : filtered
            ? 'No poses match this search.'
            : 'No poses in this category.'
    } catch (error) {
      status.textContent = `Poses could not be loaded. ${sentence(error, 'request')}`
    } finally {
      loading = false
      more.hidden = cursor === null
      more.disabled = false
    }
    if (again) {
      again = false
      await loadPage(true)
    }
  }

  function card(pose: Pose): HTMLLIElement {
    names.set(pose.id, pose.name)
    const box = h('input', { type: 'checkbox', name: 'pose', value: pose.id, class: 'pose-check' })
    box.checked = selected.has(pose.id)
    box.addEventListener('change', () => {
      if (box.checked && selected.size >= MAX_POSES) {
        box.checked = false
        status.textContent = `You can pick up to ${MAX_POSES} poses per generation.`
        return
      }
      if (box.checked) selected.add(pose.id)
      else selected.delete(pose.id)
      onChange()
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

  category.addEventListener('change', () => void loadPage(true))
  // one request per pause in typing, not per key
  const searchSoon = debounce(() => void loadPage(true), 250)
  search.addEventListener('input', searchSoon)
  more.addEventListener('click', () => void loadPage(false))

  return {
    async load() {
      await Promise.all([
        loadCategories().catch(() => {}),
        loadTags().catch(() => {}),
        loadPage(true),
      ])
    },
    selected: () => [...selected],
    nameOf: (id: string) => names.get(id),
    clear() {
      selected.clear()
      list.querySelectorAll<HTMLInputElement>('input.pose-check').forEach((box) => {
        box.checked = false
      })
      onChange()
    },
  }
}
