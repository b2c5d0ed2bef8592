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
    // a reset drops what was counted, handed over or not
    b.inc()
    metrics.registry.resetMetrics()
    a.inc()
    const third = await metrics.registry.metrics()
    expect([line(third, 'a'), line(third, 'b')]).toEqual(['1', undefined])
  })
})

describe('tally histograms', () => {
  it("scrape as the same text as prom-client's Histogram for the same observations", async () => {
    const buckets = [0.001, 0.01, 0.1, 1]
    const observations = [0, 0.0005, 0.001, 0.002, 0.05, 0.1, 0.7, 3, 12.5]
    const ours = makeMetrics({ instance: 'test' })
    const theirs = makeMetrics({ instance: 'test' })
    const fast = ours.tallyHistogram('lat_seconds', 'Latency', buckets)
    const reference = theirs.histogram('lat_seconds', 'Latency', buckets)
    for (const value of observations) {
      fast.observe(value)
      reference.observe(value)
    }
    // the histogram's lines of a whole scrape (the registries also hold process metrics)
    const text = async (metrics: ReturnType<typeof makeMetrics>) =>
      (await metrics.registry.metrics())
        .split('\n')
        .filter((line) => /^(# (HELP|TYPE) )?lat_seconds/.test(line))
        .join('\n')
    const scraped = await text(ours)
    expect(scraped).toBe(await text(theirs))
    expect(scraped).toContain('lat_seconds_bucket{le="0.001",instance="test"} 3')
    expect(scraped).toContain('lat_seconds_count{instance="test"} 9')
    ours.registry.resetMetrics()
    expect(await text(ours)).toContain('lat_seconds_count{instance="test"} 0')
  })
})
