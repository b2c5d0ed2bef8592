/**
 * bench/ws.ts's sockets, held by one or more client processes (bench/ws-client.ts): one
 * process holds at most what its descriptor limit allows (20,000 on this workplace's
 * machines, and the hard limit cannot be raised there), so 50,000 sockets take three.
 * Socket k (0-based, global) lives in client floor(k / perClient); sockets connect in k
 * order, one client after another, so a server that numbers connections by arrival (the
 * raw target) numbers them as k. Each client's latencies come back as evenly spaced order
 * statistics and are merged weighted by count.
 */
import { join } from 'node:path'
import { spawnChild, type Child } from './ipc'

export type Collected = {
  received: number
  firstAt: number
  lastAt: number
  p50: number
  p90: number
  p99: number
  max: number
  min: number
  unexpectedCloses: Record<string, number>
  /** Every client's process.cpuUsage() at the reply, user + system µs, summed. */
  cpuMicros: number
}
type ClientCollected = Collected & { quantiles: number[] }

/** Order statistics asked of each client when there are several: 0.1% apart. */
const POINTS = 1001

/** Events of a phase that reach sockets [from, to): event i goes to socket i mod n. */
export function expectedBetween(from: number, to: number, events: number, n: number) {
  const whole = Math.floor(events / n)
  const rest = events % n
  return (to - from) * whole + Math.max(0, Math.min(to, rest) - from)
}

function merge(parts: ClientCollected[]): Collected {
  const received = parts.reduce((a, p) => a + p.received, 0)
  const sum = (f: (p: ClientCollected) => number) => parts.reduce((a, p) => a + f(p), 0)
  const closes: Record<string, number> = {}
  for (const p of parts)
    for (const [code, count] of Object.entries(p.unexpectedCloses))
      closes[code] = (closes[code] ?? 0) + count
  const weighted = parts
    .flatMap((p) => p.quantiles.map((v) => ({ v, w: p.received / p.quantiles.length })))
    .sort((a, b) => a.v - b.v)
  const pct = (q: number) => {
    let seen = 0
    for (const { v, w } of weighted) if ((seen += w) >= (q / 100) * received) return v
    return weighted.at(-1)?.v ?? 0
  }
  const live = parts.filter((p) => p.received > 0)
  return {
    received,
    firstAt: Math.min(...live.map((p) => p.firstAt)),
    lastAt: Math.max(...live.map((p) => p.lastAt)),
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    max: Math.max(...parts.map((p) => p.max)),
    min: Math.min(...live.map((p) => p.min)),
    unexpectedCloses: closes,
    cpuMicros: sum((p) => p.cpuMicros),
  }
}

export function makeClientPool(count: number, perClient: number) {
  const clients: Child[] = Array.from({ length: count }, (_, c) =>
    spawnChild(`client ${c}`, join(import.meta.dir, 'ws-client.ts'), {}),
  )
  const range = (c: number, n: number) => [c * perClient, Math.min(n, (c + 1) * perClient)]
  return {
    started: Promise.all(clients.map((c) => c.started)),
    /** Opens sockets [from, to) spread over `urls`, in k order; tokens[k] authenticates k. */
    async connect(urls: string[], from: number, to: number, tokens?: string[]) {
      const t0 = performance.now()
      for (let k = from; k < to;) {
        const c = Math.floor(k / perClient)
        const end = Math.min(to, (c + 1) * perClient)
        await clients[c]!.call({ cmd: 'connect', urls, n: end - k, tokens: tokens?.slice(k, end) })
        k = end
      }
      return { seconds: (performance.now() - t0) / 1000 }
    },
    async reset() {
      const cpus = await Promise.all(
        clients.map((c) => c.call<{ cpuMicros: number }>({ cmd: 'reset' })),
      )
      return { cpuMicros: cpus.reduce((a, r) => a + r.cpuMicros, 0) }
    },
    /** Waits for each client's share of `expected` events to socket i mod n (see collect). */
    async collect(events: number, n: number, quietMs: number, timeoutMs: number) {
      const parts = await Promise.all(
        clients.map((client, c) => {
          const [from, to] = range(c, n)
          return client.call<ClientCollected>(
            {
              cmd: 'collect',
              expected: expectedBetween(from!, to!, events, n),
              quietMs,
              timeoutMs,
              points: count > 1 ? POINTS : 0,
            },
            timeoutMs + 60_000,
          )
        }),
      )
      return count === 1 ? parts[0]! : merge(parts)
    },
    disconnect: () => Promise.all(clients.map((c) => c.call({ cmd: 'disconnect' }))),
    end: () => Promise.all(clients.map((c) => c.end())),
  }
}

export type ClientPool = ReturnType<typeof makeClientPool>
