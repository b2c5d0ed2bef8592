import { h, timeElement } from './dom'
import { FINISHED, type Counters, type Generation, type Item, type ItemStatus } from './types'

/**
 * One generation on the page: a heading, a <progress> bar, a status line
 * (aria-live) and its gallery, one slot per item, filled in as items end.
 * Updates only move forward: a REST answer that is older than an event
 * already shown never takes a counter or a status back.
 */
export type Card = ReturnType<typeof makeCard>

const ITEM_RANK: Record<ItemStatus, number> = {
  queued: 0,
  running: 1,
  succeeded: 2,
  failed: 2,
  cancelled: 2,
}

const LABELS: Record<ItemStatus, string> = {
  queued: 'Queued',
  running: 'Rendering…',
  succeeded: 'Loading…',
  failed: 'Failed',
  cancelled: 'Cancelled',
}

/** What a card shows: counters only ever grow, statuses only move on. */
type CardState = Counters & { queuePosition: number | null; refunded: number }

export function makeCard(gen: Generation, altOf: (item: Item, index: number) => string) {
  const state: CardState = {
    status: gen.status,
    totalItems: gen.totalItems,
    succeededItems: 0,
    failedItems: 0,
    cancelledItems: 0,
    queuePosition: gen.queuePosition,
    refunded: 0,
  }
  const items = new Map<string, Item>()
  const el = cardElements(gen)

  function render() {
    const done = state.succeededItems + state.failedItems + state.cancelledItems
    const finished = FINISHED.has(state.status)
    el.root.dataset.status = state.status
    el.progress.max = Math.max(1, state.totalItems)
    el.progress.value = finished ? el.progress.max : done
    el.status.textContent = describe(state, done, finished)
    el.cancel.hidden = finished
    let index = 0
    for (const it of items.values()) renderSlot(el.gallery, it, index++, altOf)
  }

  return {
    root: el.root,
    cancelButton: el.cancel,
    finished: () => FINISHED.has(state.status),
    knows: (itemId: string) => items.has(itemId),
    /** A full generation from REST (items included when present). */
    update(g: Generation) {
      advance(state, g)
      state.queuePosition = g.queuePosition
      state.refunded = Math.max(state.refunded, g.creditsRefunded)
      for (const it of g.items ?? []) mergeItem(items, it)
      render()
    },
    /** A generation.* event's data. */
    event(data: Partial<Counters> & { item?: Item; creditsRefunded?: number }) {
      advance(state, data)
      if (typeof data.creditsRefunded === 'number')
        state.refunded = Math.max(state.refunded, data.creditsRefunded)
      if (data.item && items.has(data.item.id)) mergeItem(items, data.item)
      if (state.status !== 'queued') state.queuePosition = null
      render()
    },
  }
}

function cardElements(gen: Generation) {
  const id = `gen-${gen.id}`
  const progress = h('progress', {
    max: Math.max(1, gen.totalItems),
    value: 0,
    'aria-labelledby': `${id}-status`,
  })
  const status = h('p', { class: 'gen-status', id: `${id}-status`, 'aria-live': 'polite' })
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel')
  const gallery = h('ul', { class: 'gallery', 'aria-label': 'Images' })
  const title = `${gen.mode === 'library' ? 'From poses' : 'From a prompt'} · ${gen.totalItems} image${gen.totalItems === 1 ? '' : 's'}`
  const root = h(
    'li',
    { class: 'gen', id, 'data-generation-id': gen.id },
    h('div', { class: 'gen-head' }, h('h3', {}, title), timeElement(gen.createdAt)),
    progress,
    h('div', { class: 'gen-line' }, status, cancel),
    gallery,
  )
  return { root, progress, status, cancel, gallery }
}

function advance(state: CardState, c: Partial<Counters>) {
  if (c.totalItems) state.totalItems = c.totalItems
  state.succeededItems = Math.max(state.succeededItems, c.succeededItems ?? 0)
  state.failedItems = Math.max(state.failedItems, c.failedItems ?? 0)
  state.cancelledItems = Math.max(state.cancelledItems, c.cancelledItems ?? 0)
  if (c.status && !FINISHED.has(state.status)) state.status = c.status
}

/** An item's newer state; an older one (a slow REST answer) is dropped, URLs are kept. */
function mergeItem(items: Map<string, Item>, next: Item) {
  const current = items.get(next.id)
  if (current && ITEM_RANK[current.status] > ITEM_RANK[next.status]) return
  items.set(next.id, {
    ...current,
    ...next,
    imageUrl: next.imageUrl ?? current?.imageUrl ?? null,
    thumbnailUrl: next.thumbnailUrl ?? current?.thumbnailUrl ?? null,
  })
}

function describe(state: CardState, done: number, finished: boolean): string {
  const of = `${done} of ${state.totalItems} done`
  const failed = state.failedItems ? `, ${state.failedItems} failed` : ''
  const refund = state.refunded ? ` (${state.refunded} credits refunded)` : ''
  if (finished) {
    if (state.status === 'succeeded') return `Done: ${state.succeededItems} images ready`
    if (state.status === 'cancelled') return `Cancelled: ${of}${refund}`
    return `Finished: ${state.succeededItems} of ${state.totalItems} images ready${failed}${refund}`
  }
  if (state.status === 'queued' && state.queuePosition)
    return `Queued: ${state.queuePosition} image${state.queuePosition === 1 ? '' : 's'} ahead`
  return state.status === 'queued' ? 'Queued' : `Rendering: ${of}${failed}`
}

/** One item's slot, redrawn only when its status or image changed. */
function renderSlot(
  gallery: HTMLUListElement,
  it: Item,
  index: number,
  altOf: (item: Item, index: number) => string,
) {
  const url = it.thumbnailUrl ?? it.imageUrl
  const signature = `${it.status}|${url ?? ''}`
  let slot = gallery.querySelector<HTMLLIElement>(`li[data-item-id="${it.id}"]`)
  if (slot?.dataset.signature === signature) return
  if (!slot) {
    slot = h('li', { class: 'slot', 'data-item-id': it.id })
    gallery.append(slot)
  }
  slot.dataset.signature = signature
  slot.dataset.status = it.status
  if (it.status === 'succeeded' && url) {
    const alt = altOf(it, index)
    const img = h('img', { src: url, alt, width: 256, height: 256, decoding: 'async' })
    const link = h('a', { href: it.imageUrl ?? url, target: '_blank', rel: 'noopener' }, img)
    slot.replaceChildren(link)
  } else {
    const text =
      it.status === 'failed'
        ? `Failed${it.error ? `: ${it.error.message}` : ''}`
        : LABELS[it.status]
    slot.replaceChildren(h('span', { class: 'slot-label' }, text))
  }
}
