import { get } from './api'
import { byId, h, svg } from './dom'
import { sentence } from './errors'

/**
 * The stats panel: the caller's last 30 days from GET /v1/stats/me, as a
 * sentence and a small SVG chart of each day's images (bars) and credits spent
 * (a line), both scaled to their own maximum. Drawn with DOM calls, never markup.
 */
export type DailyStats = { date: string; images: number; credits: number }
export type UserStats = {
  images: { succeeded: number; failed: number; cancelled: number }
  credits: { charged: number; refunded: number; balance: number }
  daily: DailyStats[]
}

const W = 300
const H = 80

export function makeStatsPanel() {
  const summary = byId('stats-summary')
  const chart = byId('stats-chart')
  const status = byId('stats-status')
  let version = 0

  return {
    async reload() {
      const mine = ++version
      try {
        const stats = await get<UserStats>('/v1/stats/me')
        if (mine !== version) return
        const images = stats.daily.reduce((a, d) => a + d.images, 0)
        const spent = stats.daily.reduce((a, d) => a + d.credits, 0)
        summary.textContent = `${images} images, ${spent} credits spent.`
        summary.dataset.images = String(images)
        summary.dataset.credits = String(spent)
        chart.replaceChildren(chartOf(stats.daily), legend())
        status.textContent = ''
      } catch (error) {
        if (mine === version)
          status.textContent = `Stats could not be loaded. ${sentence(error, 'request')}`
      }
    },
    clear() {
      version++
      summary.textContent = ''
      chart.replaceChildren()
    },
  }
}

/** Each day's images as bars and its credits as a line, each scaled to its own maximum. */
function chartOf(daily: DailyStats[]): SVGElement {
  const n = Math.max(1, daily.length)
  const step = W / n
  const maxImages = Math.max(1, ...daily.map((d) => d.images))
  const maxCredits = Math.max(1, ...daily.map((d) => d.credits))
  const label = `Images and credits per day, ${daily[0]?.date ?? ''} to ${daily.at(-1)?.date ?? ''}`
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H + 12}`,
    class: 'stats-svg',
    role: 'img',
    'aria-label': label,
    focusable: 'false',
  })
  daily.forEach((d, i) => {
    const height = (d.images / maxImages) * H
    root.append(
      svg(
        'rect',
        {
          class: 'bar',
          x: (i * step + step * 0.15).toFixed(2),
          y: (H - height).toFixed(2),
          width: (step * 0.7).toFixed(2),
          height: height.toFixed(2),
          'data-date': d.date,
          'data-images': d.images,
        },
        svg('title', {}, `${d.date}: ${d.images} images, ${d.credits} credits`),
      ),
    )
  })
  const points = daily
    .map(
      (d, i) =>
        `${(i * step + step / 2).toFixed(2)},${(H - (d.credits / maxCredits) * H).toFixed(2)}`,
    )
    .join(' ')
  root.append(svg('polyline', { class: 'line', points, fill: 'none' }))
  root.append(svg('line', { class: 'axis', x1: 0, y1: H, x2: W, y2: H }))
  return root
}

function legend(): HTMLParagraphElement {
  return h(
    'p',
    { class: 'legend hint' },
    h('span', { class: 'key key-bar' }),
    ' images',
    h('span', { class: 'key key-line' }),
    ' credits spent',
  )
}
