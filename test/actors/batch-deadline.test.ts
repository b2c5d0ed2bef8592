import { describe, expect, it } from 'bun:test'
import { makeActorSystem } from '../../src/actors/actor-system'
import { AppError } from '../../src/errors'
import { silentLog } from '../support/env'

describe('actor batch deadline', () => {
  it('fails a batch past its deadline with 503 and goes on with the next one', async () => {
    const calls: string[][] = []
    const stuck = Promise.withResolvers<void>()
    const actors = makeActorSystem<string, string>({
      name: 'deadline_probe',
      log: silentLog,
      batchTimeoutMs: 200,
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
