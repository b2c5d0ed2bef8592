/**
 * Load for the fault suite: per user, a loop of logical operations (an admin
 * grant, a generation), each sent with its own Idempotency-Key and retried
 * with the same key until it has an answer that is not 503/409, as a real
 * client would. Every HTTP response is recorded, so a test can assert on all
 * of them (no 500, every 503 carries Retry-After) and compute exact balances
 * from the operations that took effect.
 *
 * `targets()` is the load balancer: the instances to send to right now.
 */
export type Response_ = {
  status: number | 'network'
  /** What fetch threw, for a 'network' answer (the connection closed, reset, timed out). */
  error?: string
  retryAfter: string | null
  code?: string
  path: string
  target: string
  startedAt: number
  endedAt: number
}

export type Operation = {
  kind: 'grant' | 'generation'
  userId: string
  key: string
  amount: number
  /** The final answer: 201/202 took effect; 402 changed nothing. */
  status?: number
  generationId?: string
}

export type LoadUser = { id: string; token: string }

export type LoadOptions = {
  targets: () => string[]
  users: LoadUser[]
  adminToken: string
  /** Pause between a user's operations (default 20 ms). */
  thinkMs?: number
  /** Pause before retrying a 503/409 (default 100 ms; the tests check Retry-After exists). */
  retryMs?: number
}

export const GRANT = 100

export function startLoad(o: LoadOptions) {
  const responses: Response_[] = []
  const operations: Operation[] = []
  let stopping = false
  let n = 0
  // keys are unique per run: a second run must not replay the first one's answers
  const run = crypto.randomUUID().slice(0, 8)

  async function send(path: string, token: string, body: unknown, key: string) {
    const targets = o.targets()
    const target = targets[n++ % Math.max(1, targets.length)]
    const startedAt = performance.now()
    if (!target) {
      await Bun.sleep(o.retryMs ?? 100)
      return { status: 503 as const, json: undefined, retryAfter: null }
    }
    try {
      const res = await fetch(`${target}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${token}`,
          'idempotency-key': key,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      })
      const json = (await res.json().catch(() => undefined)) as any
      responses.push({
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        code: json?.error?.code,
        path,
        target,
        startedAt,
        endedAt: performance.now(),
      })
      return { status: res.status, json, retryAfter: res.headers.get('retry-after') }
    } catch (error) {
      responses.push({
        status: 'network',
        error: String(error),
        retryAfter: null,
        path,
        target,
        startedAt,
        endedAt: performance.now(),
      })
      return { status: 'network' as const, json: undefined, retryAfter: null }
    }
  }

  async function perform(op: Operation, path: string, token: string, body: unknown) {
    operations.push(op)
    const giveUpAt = performance.now() + 60_000
    for (;;) {
      const res = await send(path, token, body, op.key)
      if (res.status !== 503 && res.status !== 409 && res.status !== 'network') {
        op.status = res.status
        if (op.kind === 'generation' && res.status === 202) {
          op.generationId = res.json.id
          op.amount = res.json.creditsCharged
        }
        return
      }
      if (performance.now() > giveUpAt) throw new Error(`operation ${op.key} never answered`)
      if (stopping && o.targets().length === 0) return // every instance is gone: nothing to ask
      // a 409 on a key in flight says when its hold ends; a 503 is retried soon, to see recovery
      const wait =
        res.status === 409 && res.retryAfter ? Number(res.retryAfter) * 1000 : (o.retryMs ?? 100)
      await Bun.sleep(wait)
    }
  }

  async function user(u: LoadUser) {
    let i = 0
    while (!stopping) {
      const key = `${run}:${u.id}:${i++}`
      if (i % 3 === 1)
        await perform(
          { kind: 'grant', userId: u.id, key, amount: GRANT },
          '/v1/admin/credits/grants',
          o.adminToken,
          { userId: u.id, amount: GRANT, reason: 'fault suite' },
        )
      else
        await perform(
          { kind: 'generation', userId: u.id, key, amount: 0 },
          '/v1/generations',
          u.token,
          { mode: 'text', prompt: `fault suite ${key}`, variations: 1 },
        )
      await Bun.sleep(o.thinkMs ?? 20)
    }
  }

  const loops = o.users.map(user)
  return {
    responses,
    operations,
    /** Stops starting operations and waits for those in flight to get their answer. */
    async stop() {
      stopping = true
      await Promise.all(loops)
    },
  }
}

/** Counts by status ('network' included), e.g. { 201: 40, 202: 80, 503: 12 }. */
export function tally(responses: Response_[]) {
  const out: Record<string, number> = {}
  for (const r of responses) out[String(r.status)] = (out[String(r.status)] ?? 0) + 1
  return out
}
