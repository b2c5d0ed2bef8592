import { createConnection, createServer, type Server, type Socket } from 'node:net'

/**
 * A loopback TCP proxy that sits between an instance and Postgres or Redis
 * and injects the faults of a real network, so tests never stop the shared
 * services.
 *
 * Modes (one at a time; `heal()` returns to `open`):
 *   open      forwards both ways
 *   refusing  new connections are reset at once (a restarting server); set by
 *             `refuse(ms)`, which returns to `open` after ms (or on `heal()`)
 *   stalled   a blackhole: new connections are accepted, nothing is forwarded
 *             either way on any connection (bytes stay queued, as in a
 *             partition that TCP later heals); `heal()` resumes forwarding
 * `cut()` destroys every current connection (both sides) in any mode: what a
 * server restart or pg_terminate_backend does to the clients.
 */
export type FaultMode = 'open' | 'refusing' | 'stalled'

export type FaultProxy = {
  /** The loopback port the proxy listens on. */
  readonly port: number
  readonly mode: FaultMode
  /** Connections currently held open through the proxy. */
  readonly connections: number
  /** Connections accepted since start (refused ones included). */
  readonly accepted: number
  /** Bytes held back by a stall, not yet forwarded. */
  readonly queuedBytes: number
  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string
  /** Destroys every current connection, both sides. */
  cut(): void
  /** Resets new connections for `ms` (or until `heal()`). */
  refuse(ms?: number): void
  /** Blackholes every connection, current and new, until `heal()`. */
  stall(): void
  /** Back to forwarding; stalled connections resume with their queued bytes. */
  heal(): void
  close(): Promise<void>
}

type Pair = { client: Socket; upstream: Socket; queued: { to: Socket; data: Buffer }[] }

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: FaultMode = 'open'
  let refuseTimer: ReturnType<typeof setTimeout> | undefined
  let accepted = 0
  const pairs = new Set<Pair>()

  function forward(pair: Pair, to: Socket, data: Buffer) {
    if (mode === 'stalled') pair.queued.push({ to, data })
    else if (!to.destroyed) to.write(data)
  }

  function destroy(pair: Pair) {
    if (!pairs.delete(pair)) return
    pair.client.destroy()
    pair.upstream.destroy()
  }

  const server: Server = createServer({ pauseOnConnect: false }, (client) => {
    accepted++
    if (mode === 'refusing') {
      client.resetAndDestroy()
      return
    }
    const upstream = createConnection({ host: target.host, port: target.port })
    const pair: Pair = { client, upstream, queued: [] }
    pairs.add(pair)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    client.on('data', (data: Buffer) => forward(pair, upstream, data))
    upstream.on('data', (data: Buffer) => forward(pair, client, data))
    for (const socket of [client, upstream]) {
      // either side ending or failing ends the pair: a proxy never half-opens
      socket.on('error', () => destroy(pair))
      socket.on('close', () => destroy(pair))
    }
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  if (!address || typeof address === 'string') throw new Error('fault proxy: no port')

  function clearRefuse() {
    if (refuseTimer) clearTimeout(refuseTimer)
    refuseTimer = undefined
  }

  return {
    port: address.port,
    get mode() {
      return mode
    },
    get connections() {
      return pairs.size
    },
    get accepted() {
      return accepted
    },
    get queuedBytes() {
      let n = 0
      for (const pair of pairs) for (const q of pair.queued) n += q.data.length
      return n
    },
    url(url) {
      const u = new URL(url)
      u.hostname = '127.0.0.1'
      u.port = String(address.port)
      return u.toString()
    },
    cut() {
      for (const pair of [...pairs]) destroy(pair)
    },
    refuse(ms) {
      clearRefuse()
      mode = 'refusing'
      if (ms !== undefined)
        refuseTimer = setTimeout(() => {
          refuseTimer = undefined
          if (mode === 'refusing') mode = 'open'
        }, ms)
    },
    stall() {
      clearRefuse()
      mode = 'stalled'
    },
    heal() {
      clearRefuse()
      mode = 'open'
      for (const pair of pairs) {
        for (const { to, data } of pair.queued.splice(0)) if (!to.destroyed) to.write(data)
      }
    },
    async close() {
      clearRefuse()
      for (const pair of [...pairs]) destroy(pair)
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
