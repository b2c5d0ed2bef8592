import { Counter, type Histogram, type Registry } from 'prom-client'

/**
 * Counters and histograms for paths that count every event (the WebSocket
 * delivery path, the event tails): each adds to plain numbers, which the
 * registry takes up when it is read (a scrape).
 */

/**
 * A counter whose bound children add to a plain number, handed to the
 * counter when it is collected. prom-client's own inc hashes the labels on
 * every call: ~0.7 µs per delivered event over the counters of the WebSocket
 * delivery path.
 */
export function makeTally<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
) {
  const children: { labels: Partial<Record<L, string>>; count: number }[] = []
  const counter = new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const child of children) {
        if (child.count === 0) continue
        this.inc(child.labels, child.count)
        child.count = 0
      }
    },
  })
  // a reset (registry.resetMetrics) also drops what the children have not handed over
  const reset = counter.reset.bind(counter)
  counter.reset = () => {
    for (const child of children) child.count = 0
    reset()
  }
  return {
    /** A child for one set of labels: bind it once, not per event. */
    child(labels: Partial<Record<L, string>> = {}) {
      const child = { labels, count: 0 }
      children.push(child)
      return {
        inc() {
          child.count++
        },
      }
    },
  }
}

/**
 * A histogram without labels: counts per bucket in plain numbers, turned into
 * the registry's values when it is read. prom-client's Histogram hashes its
 * labels and checks its value on every observe (~0.4 µs per event on the
 * WebSocket delivery path); the text scraped is the same (cumulative buckets,
 * +Inf, sum, count; tested).
 */
export function makeTallyHistogram(
  registry: Registry,
  name: string,
  help: string,
  buckets: number[],
) {
  const bounds = [...buckets].sort((a, b) => a - b)
  const counts = bounds.map(() => 0)
  let sum = 0
  let count = 0
  const values = () => {
    let cumulative = 0
    return [
      ...bounds.map((le, i) => ({
        metricName: `${name}_bucket`,
        labels: { le },
        value: (cumulative += counts[i]!),
      })),
      { metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: count },
      { metricName: `${name}_sum`, labels: {}, value: sum },
      { metricName: `${name}_count`, labels: {}, value: count },
    ]
  }
  const type = 'histogram'
  const aggregator = 'sum'
  // the registry reads a metric through get() and reset() only
  registry.registerMetric({
    name,
    help,
    type,
    aggregator,
    get: async () => ({ name, help, type, aggregator, values: values() }),
    reset() {
      counts.fill(0)
      sum = 0
      count = 0
    },
  } as unknown as Histogram)
  return {
    observe(value: number) {
      let i = 0
      while (i < bounds.length && value > bounds[i]!) i++
      if (i < bounds.length) counts[i]!++
      sum += value
      count++
    },
  }
}
