import { api, get, newKey } from './api'
import { makeCard, type Card } from './card'
import { byId } from './dom'
import { sentence } from './errors'
import type { Generation, Item, Page } from './types'

/**
 * The list of generations and what keeps it current: REST for the state,
 * events for the news. An event that an item succeeded triggers one
 * GET /v1/generations/:id (coalesced per generation: while one is in flight,
 * further events only mark it dirty, and one more fetch follows), because
 * only REST hands out the signed image URLs.
 */
export type Generations = ReturnType<typeof makeGenerations>

export type GenerationsDeps = {
  /** A pose's name, for the images' alt text. */
  nameOf: (poseId: string) => string | undefined
  notify: (message: string) => void
}

/** The list on the page, its cards by generation id, and the fetches in flight. */
type List = {
  deps: GenerationsDeps
  list: HTMLOListElement
  empty: HTMLElement
  cards: Map<string, Card>
  fetching: Map<string, { dirty: boolean }>
  altOf: (item: Item, index: number) => string
}

export function makeGenerations(deps: GenerationsDeps) {
  const l: List = {
    deps,
    list: byId<HTMLOListElement>('generations'),
    empty: byId('generations-empty'),
    cards: new Map(),
    fetching: new Map(),
    altOf: (item, index) => altText(deps.nameOf, item, index),
  }

  return {
    /** Everything again over REST: on sign-in, and when the socket says resync. */
    async reload() {
      const page = await get<Page<Generation>>('/v1/generations?limit=10')
      for (const gen of page.items.slice().reverse()) cardFor(l, gen, 'top')
      await Promise.all(page.items.map((g) => refresh(l, g.id)))
    },
    /** The 202 of POST /v1/generations. */
    added(gen: Generation) {
      cardFor(l, gen, 'top')
    },
    event(name: string, data: Record<string, unknown>) {
      const id = typeof data.generationId === 'string' ? data.generationId : undefined
      if (!id) return
      const card = l.cards.get(id)
      if (!card || name === 'generation.queued') return void refresh(l, id)
      if (name === 'generation.started') card.event({ status: 'running' })
      else card.event(data)
      const item = data.item as Item | undefined
      const news = item && (item.status === 'succeeded' || !card.knows(item.id))
      if (name === 'generation.finished' || news) void refresh(l, id)
    },
    clear() {
      l.cards.clear()
      l.list.replaceChildren()
      l.empty.hidden = false
    },
  }
}

/** "<pose>, variation <n>" from the item's key ("<poseId>-v<n>"), or a plain ordinal. */
function altText(nameOf: GenerationsDeps['nameOf'], item: Item, index: number): string {
  const m = /^(.+)-v(\d+)$/.exec(item.key ?? '')
  const variation = m ? Number(m[2]) + 1 : index + 1
  const pose = m && m[1] !== 'text' ? nameOf(m[1]!) : undefined
  return pose ? `${pose}, variation ${variation}` : `Generated image ${index + 1}`
}

function cardFor(l: List, gen: Generation, position: 'top' | 'bottom'): Card {
  let card = l.cards.get(gen.id)
  if (!card) {
    card = makeCard(gen, l.altOf)
    l.cards.set(gen.id, card)
    const c = card
    card.cancelButton.addEventListener('click', () => void cancel(l, gen.id, c))
    if (position === 'top') l.list.prepend(card.root)
    else l.list.append(card.root)
    l.empty.hidden = true
  }
  card.update(gen)
  return card
}

async function refresh(l: List, id: string) {
  const inFlight = l.fetching.get(id)
  if (inFlight) {
    inFlight.dirty = true
    return
  }
  const mark = { dirty: false }
  l.fetching.set(id, mark)
  try {
    do {
      mark.dirty = false
      cardFor(l, await get<Generation>(`/v1/generations/${id}`), 'top')
    } while (mark.dirty)
  } catch {
    // the next event or resync fetches it again
  } finally {
    l.fetching.delete(id)
  }
}

async function cancel(l: List, id: string, card: Card) {
  card.cancelButton.disabled = true
  try {
    card.update(
      await api<Generation>('POST', `/v1/generations/${id}/cancel`, { idempotencyKey: newKey() }),
    )
  } catch (error) {
    l.deps.notify(sentence(error, 'request'))
  } finally {
    card.cancelButton.disabled = false
  }
}
