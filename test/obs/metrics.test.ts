import { describe, expect, it } from 'bun:test'
import { makeMetrics } from '../../src/obs/metrics'

describe('tally counters', () => {
  it('count per child and show every count at each scrape, none twice', async () => {
    const metrics = makeMetrics({ instance: 'test' })
    const tally = metrics.tally('things_total', 'Things', ['kind'])
    const a = tally.child({ kind: 'a' })
    const b = tally.child({ kind: 'b' })
    for (let i = 0; i < 3; i++) a.inc()
    b.inc()
    const line = (text: string, kind: string) =>
      new RegExp(`^things_total\\{kind="${kind}",instance="test"\\} (\\d+)$`, 'm').exec(text)?.[1]
    const first = await metrics.registry.metrics()
    expect([line(first, 'a'), line(first, 'b')]).toEqual(['3', '1'])
    a.inc()
    a.inc()
    const second = await metrics.registry.metrics()
    expect([line(second, 'a'), line(second, 'b')]).toEqual(['5', '1'])
    expect((await metrics.registry.getSingleMetric('things_total')!.get()).values).toHaveLength(2)
  })
})
