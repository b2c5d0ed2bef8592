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

export function makeGenerations(deps: {
  nameOf: (poseId: string) => string | undefined
  notify: (message: string) => void
}) {
  const list = byId<HTMLOListElement>('generations')
  const empty = byId('generations-empty')
  const cards = new Map<string, Card>()
  const fetching = new Map<string, { dirty: boolean }>()

  function altOf(item: Item, index: number): string {
    const m = /^(.+)-v(\d+)$/.exec(item.key ?? '')
    const variation = m ? Number(m[2]) + 1 : index + 1
    const pose = m && m[1] !== 'text' ? deps.nameOf(m[1]!) : undefined
    return pose ? `${pose}, variation ${variation}` : `Generated image ${index + 1}`
  }

  function cardFor(gen: Generation, position: 'top' | 'bottom'): Card {
    let card = cards.get(gen.id)
    if (!card) {
      card = makeCard(gen, altOf)
      cards.set(gen.id, card)
      const c = card
      card.cancelButton.addEventListener('click', () => void cancel(gen.id, c))
      if (position === 'top') list.prepend(card.root)
      else list.append(card.root)
      empty.hidden = true
    }
    card.update(gen)
    return card
  }

  async function refresh(id: string) {
    const inFlight = fetching.get(id)
    if (inFlight) {
      inFlight.dirty = true
      return
    }
    const mark = { dirty: false }
    fetching.set(id, mark)
    try {
      do {
        mark.dirty = false
        cardFor(await get<Generation>(`/v1/generations/${id}`), 'top')
      } while (mark.dirty)
    } catch {
      // the next event or resync fetches it again
    } finally {
      fetching.delete(id)
    }
  }

  async function cancel(id: string, card: Card) {
    card.cancelButton.disabled = true
    try {
      card.update(
        await api<Generation>('POST', `/v1/generations/${id}/cancel`, { idempotencyKey: newKey() }),
      )
    } catch (error) {
      deps.notify(sentence(error, 'request'))
    } finally {
      card.cancelButton.disabled = false
    }
  }

  return {
    /** Everything again over REST: on sign-in, and when the socket says resync. */
    async reload() {
      const page = await get<Page<Generation>>('/v1/generations?limit=10')
      for (const gen of page.items.slice().reverse()) cardFor(gen, 'top')
      await Promise.all(page.items.map((g) => refresh(g.id)))
    },
    /** The 202 of POST /v1/generations. */
    added(gen: Generation) {
      cardFor(gen, 'top')
    },
    event(name: string, data: Record<string, unknown>) {
      const id = typeof data.generationId === 'string' ? data.generationId : undefined
      if (!id) return
      const card = cards.get(id)
      if (!card || name === 'generation.queued') return void refresh(id)
      if (name === 'generation.started') card.event({ status: 'running' })
      else card.event(data)
      const item = data.item as Item | undefined
      const news = item && (item.status === 'succeeded' || !card.knows(item.id))
      if (name === 'generation.finished' || news) void refresh(id)
    },
    clear() {
      cards.clear()
      list.replaceChildren()
      empty.hidden = false
    },
  }
}
