/**
 * The socket side of bench/ws.ts, in its own process so the server's CPU and
 * RSS are its own. It holds N WebSockets and times every event frame against
 * the `sentAt` the server put in its data (epoch ms with a fraction; both
 * processes read the same clock).
 *
 * Commands arrive over IPC one at a time and each gets exactly one reply:
 *   connect → reset → collect (repeat) → disconnect → exit (which does not reply).
 */

import { serveCommands } from './ipc'

type Command =
  | { cmd: 'connect'; urls: string[]; n: number; tokens?: string[] }
  | { cmd: 'reset' }
  | { cmd: 'collect'; expected: number; quietMs: number; timeoutMs: number; points?: number }
  | { cmd: 'disconnect' }
  | { cmd: 'exit' }

/** Sockets opening at once: enough to be quick, few enough not to overflow the accept backlog. */
const CONNECTING = 128
const READY_TIMEOUT_MS = 15_000
const MARK = '"sentAt":'

const now = () => performance.timeOrigin + performance.now()

let sockets: WebSocket[] = []
let closing = false
let latencies = new Float64Array(1 << 20)
let received = 0
let firstAt = 0
let lastAt = 0
/** Closes we did not ask for (e.g. 1013 from a slow-consumer check), by code. */
const unexpected: Record<string, number> = {}

/** Hot path: no JSON.parse, so the client spends as little of the shared CPU as it can. */
function onFrame(text: string) {
  const t = now()
  const at = text.indexOf(MARK)
  if (at < 0) return
  const sentAt = Number.parseFloat(text.slice(at + MARK.length))
  if (received === latencies.length) {
    const grown = new Float64Array(latencies.length * 2)
    grown.set(latencies)
    latencies = grown
  }
  latencies[received++] = t - sentAt
  if (firstAt === 0) firstAt = t
  lastAt = t
}

function open(url: string, token: string | undefined): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    let ready = false
    const timer = setTimeout(() => {
      reject(new Error(`no ready frame within ${READY_TIMEOUT_MS} ms`))
      ws.close()
    }, READY_TIMEOUT_MS)
    ws.onopen = () => {
      if (token) ws.send(JSON.stringify({ type: 'auth', token }))
    }
    ws.onmessage = (m) => {
      if (ready || !String(m.data).startsWith('{"type":"ready"')) return
      ready = true
      clearTimeout(timer)
      ws.onmessage = (e) => onFrame(e.data as string)
      resolve(ws)
    }
    ws.onclose = (e) => {
      if (!ready) {
        clearTimeout(timer)
        return reject(new Error(`closed before ready: ${e.code} ${e.reason}`))
      }
      if (!closing) unexpected[e.code] = (unexpected[e.code] ?? 0) + 1
    }
  })
}

/**
 * Opens n more sockets (authenticated with tokens[i] when given), next to those already open,
 * spread over `urls` (the same server at several loopback addresses: one source address
 * reaches one destination from at most ~28,000 ephemeral ports).
 */
async function connect(urls: string[], n: number, tokens?: string[]) {
  const t0 = performance.now()
  closing = false
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(CONNECTING, n) }, async () => {
      while (next < n) {
        const i = next++
        sockets.push(await open(urls[i % urls.length]!, tokens?.[i]))
      }
    }),
  )
  return { sockets: sockets.length, seconds: (performance.now() - t0) / 1000 }
}

function cpuMicros() {
  const { user, system } = process.cpuUsage()
  return user + system
}

function reset() {
  received = 0
  firstAt = 0
  lastAt = 0
  return { cpuMicros: cpuMicros() }
}

/** Waits for `expected` frames, or until none arrived for quietMs, or timeoutMs in all. */
async function collect(expected: number, quietMs: number, timeoutMs: number, points = 0) {
  const start = performance.now()
  let seen = -1
  let changed = start
  while (received < expected) {
    const t = performance.now()
    if (received !== seen) [seen, changed] = [received, t]
    if (t - changed > quietMs || t - start > timeoutMs) break
    await Bun.sleep(20)
  }
  const cpu = cpuMicros()
  const sorted = latencies.slice(0, received).sort()
  const pct = (p: number) => sorted[Math.min(received - 1, Math.floor((p / 100) * received))] ?? 0
  return {
    received,
    firstAt,
    lastAt,
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    max: sorted[received - 1] ?? 0,
    min: sorted[0] ?? 0,
    unexpectedCloses: { ...unexpected },
    cpuMicros: cpu,
    // with several client processes the orchestrator merges these evenly spaced order
    // statistics (weighted by `received`) instead of every latency
    quantiles: points
      ? Array.from({ length: points }, (_, i) => pct((i / (points - 1)) * 100))
      : [],
  }
}

async function disconnect() {
  closing = true
  const closed = sockets.map(
    (ws) =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve()
        ws.addEventListener('close', () => resolve())
        ws.close(1000)
      }),
  )
  let timer: ReturnType<typeof setTimeout> | undefined
  const all = await Promise.race([
    Promise.all(closed).then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 10_000))),
  ])
  clearTimeout(timer)
  sockets = []
  return { allClosed: all }
}

async function run(command: Command): Promise<unknown> {
  switch (command.cmd) {
    case 'connect':
      return connect(command.urls, command.n, command.tokens)
    case 'reset':
      return reset()
    case 'collect':
      return collect(command.expected, command.quietMs, command.timeoutMs, command.points)
    case 'disconnect':
      return disconnect()
    case 'exit':
      // the one command without a reply: the orchestrator waits for the exit itself
      return process.exit(0)
    default:
      throw new Error(`unknown command ${JSON.stringify(command satisfies never)}`)
  }
}

serveCommands(run)
