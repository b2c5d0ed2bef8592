import { describe, expect, it } from 'bun:test'
import pino from 'pino'
import { makeLifecycle } from '../../src/lifecycle/lifecycle'

/** A logger whose lines the test reads. */
function recording() {
  const lines: { msg: string; [k: string]: unknown }[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) })
  return { log, lines }
}

describe('drain stages', () => {
  it('reports a stage past the budget and says the drain was not clean', async () => {
    const { log, lines } = recording()
    const lifecycle = makeLifecycle(log)
    const never = Promise.withResolvers<void>()
    lifecycle.onDrain('stuck', () => never.promise)
    lifecycle.onDrain('after', async () => {})
    const t0 = performance.now()
    expect(await lifecycle.drain(300)).toBe(false)
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(lines.find((l) => l.msg === 'drain budget ran out')).toMatchObject({ stage: 'stuck' })
    never.resolve()
  })

  it('runs every stage but is not clean when one fails', async () => {
    const { log, lines } = recording()
    const lifecycle = makeLifecycle(log)
    const ran: string[] = []
    lifecycle.onDrain('fails', async () => {
      ran.push('fails')
      throw new Error('could not hand back')
    })
    lifecycle.onDrain('next', async () => void ran.push('next'))
    expect(await lifecycle.drain(1000)).toBe(false)
    expect(ran).toEqual(['fails', 'next'])
    expect(lines.find((l) => l.msg === 'drain stage failed')).toMatchObject({ stage: 'fails' })
  })

  it('keeps readiness off and the listener open for the grace before closing it', async () => {
    const { log } = recording()
    const lifecycle = makeLifecycle(log)
    let closedAt = 0
    const t0 = performance.now()
    const drained = lifecycle.drain(2000, () => void (closedAt = performance.now()), 300)
    expect(lifecycle.draining).toBe(true)
    expect(closedAt).toBe(0)
    expect(await drained).toBe(true)
    expect(closedAt - t0).toBeGreaterThanOrEqual(290)
  })

  it('runs the stages in the declared order, whatever order the rooms registered them in', async () => {
    const { log } = recording()
    const lifecycle = makeLifecycle(log, { drainOrder: ['pool', 'actors', 'sockets'] })
    const ran: string[] = []
    for (const name of ['sockets', 'unlisted', 'actors', 'pool', 'also unlisted'])
      lifecycle.onDrain(name, async () => void ran.push(name))
    expect(await lifecycle.drain(1000)).toBe(true)
    expect(ran).toEqual(['pool', 'actors', 'sockets', 'unlisted', 'also unlisted'])
  })
})

describe('closers', () => {
  it('close last made first, each awaited, and a failing one does not stop the rest', async () => {
    const { log, lines } = recording()
    const lifecycle = makeLifecycle(log)
    const closed: string[] = []
    lifecycle.onClose('database', async () => void closed.push('database'))
    lifecycle.onClose('relay', () => {
      closed.push('relay')
      throw new Error('relay would not stop')
    })
    lifecycle.onClose('gateway', async () => {
      await Bun.sleep(1)
      closed.push('gateway')
    })
    await expect(lifecycle.close()).rejects.toThrow('relay would not stop')
    expect(closed).toEqual(['gateway', 'relay', 'database'])
    expect(lines.find((l) => l.msg === 'closing failed')).toMatchObject({ part: 'relay' })
  })
})
