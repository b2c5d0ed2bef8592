import { get } from './api'
import { byId, h, timeElement } from './dom'
import { sentence } from './errors'
import type { LedgerEntry, Page } from './types'

/** The credits history: newest first, a page at a time, reloaded when credits change. */
const KIND_LABELS: Record<string, string> = {
  grant: 'Granted',
  purchase: 'Purchased',
  charge: 'Charged',
  refund: 'Refunded',
  adjustment: 'Adjusted',
}

/** "generation 01a20179-9ae4-…" reads better as "generation 01a20179…"; the full id is in the API. */
const shortIds = (text: string) =>
  text.replace(/\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f-]{22,}/gi, '$1…')

export function makeLedger() {
  const body = byId<HTMLTableSectionElement>('ledger-rows')
  const more = byId<HTMLButtonElement>('more-ledger')
  const status = byId('ledger-status')
  let cursor: string | null = null

  function row(e: LedgerEntry): HTMLTableRowElement {
    const amount = e.amount > 0 ? `+${e.amount}` : String(e.amount)
    return h(
      'tr',
      {},
      h('td', {}, timeElement(e.createdAt)),
      h(
        'td',
        {},
        KIND_LABELS[e.kind] ?? e.kind,
        h('span', { class: 'reason' }, shortIds(e.reason)),
      ),
      h('td', { class: e.amount < 0 ? 'num minus' : 'num plus' }, amount),
      h('td', { class: 'num' }, String(e.balanceAfter)),
    )
  }

  // only the newest load may write: a slower, older answer is dropped
  let latest = 0

  async function load(reset: boolean) {
    const mine = ++latest
    more.disabled = true
    try {
      const query = new URLSearchParams({ limit: '20' })
      if (!reset && cursor) query.set('cursor', cursor)
      const page = await get<Page<LedgerEntry>>(`/v1/credits/ledger?${query}`)
      if (mine !== latest) return
      if (reset) body.replaceChildren()
      body.append(...page.items.map(row))
      cursor = page.nextCursor
      status.textContent = body.children.length === 0 ? 'No credit movements yet.' : ''
    } catch (error) {
      if (mine === latest)
        status.textContent = `The history could not be loaded. ${sentence(error, 'request')}`
    } finally {
      more.hidden = cursor === null
      more.disabled = false
    }
  }

  more.addEventListener('click', () => void load(false))

  return {
    reload: () => load(true),
    clear() {
      latest++
      body.replaceChildren()
      cursor = null
      more.hidden = true
    },
  }
}
