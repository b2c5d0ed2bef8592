import { describe, expect, it } from 'bun:test'
import { makeActorSystem, type Exchange } from '../../src/actors/actor-system'
import { AppError } from '../../src/errors'
import { silentLog } from '../support/env'

describe('actor batch deadline', () => {
  it('aborts a batch at its deadline and answers what its handler settles with', async () => {
    const seen: { aborted: boolean; reason: unknown }[] = []
    const actors = makeActorSystem<Exchange<string, string>>({
      name: 'deadline_signal_probe',
      log: silentLog,
      batchTimeoutMs: 200,
      // the handler ends its work on the abort: 'a' had committed, 'b' had not
      handle: (_key, batch, context) =>
        new Promise((resolve) => {
          const signal = context?.signal
          signal!.addEventListener('abort', () => {
            seen.push({ aborted: signal!.aborted, reason: signal!.reason })
            resolve(
              batch.map((c) =>
                c === 'a'
                  ? { ok: true as const, value: `done ${c}` }
                  : { ok: false as const, error: signal!.reason as Error },
              ),
            )
          })
        }),
    })
    try {
      const t0 = performance.now()
      const [done, aborted] = await Promise.allSettled([
        actors.ask('user-1', 'a'),
        actors.ask('user-1', 'b'),
      ])
      expect(done).toEqual({ status: 'fulfilled', value: 'done a' })
      expect(aborted.status).toBe('rejected')
      const error = (aborted as PromiseRejectedResult).reason as AppError
      expect(error.status).toBe(503)
      expect(error.headers['retry-after']).toBe('1')
      // one batch each ('b' queued behind 'a'), each aborted at its own deadline
      expect(seen.map((s) => s.aborted)).toEqual([true, true])
      expect(performance.now() - t0).toBeLessThan(1500)
    } finally {
      await actors.close()
    }
  })

  it('gives up on a batch that ignores its abort after the grace, with 503, and goes on', async () => {
    const calls: string[][] = []
    const stuck = Promise.withResolvers<void>()
    const actors = makeActorSystem<Exchange<string, string>>({
      name: 'deadline_probe',
      log: silentLog,
      batchTimeoutMs: 200,
      abortGraceMs: 100,
      // the first batch never answers (a database that went silent); later ones do
      handle: async (_key, batch) => {
        calls.push([...batch])
        if (batch.includes('hangs')) await stuck.promise
        return batch.map((c) => ({ ok: true as const, value: `done ${c}` }))
      },
    })
    try {
      const t0 = performance.now()
      const first = actors.ask('user-1', 'hangs').then(
        () => 'answered',
        (e: unknown) => e,
      )
      const error = await first
      expect(error).toBeInstanceOf(AppError)
      expect((error as AppError).status).toBe(503)
      expect((error as AppError).headers['retry-after']).toBe('1')
      expect(performance.now() - t0).toBeLessThan(1000)
      // the mailbox is not wedged: the same key answers at once
      expect(await actors.ask('user-1', 'next')).toBe('done next')
      expect(calls).toEqual([['hangs'], ['next']])
    } finally {
      stuck.resolve()
      await actors.close()
    }
  })
})
