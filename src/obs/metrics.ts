import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * One registry per app instance, so tests that build several apps in one
 * process get separate figures. Rooms add their own metrics to `registry`.
 */
export type Metrics = ReturnType<typeof makeMetrics>

export function makeMetrics(labels: Record<string, string> = {}) {
  const registry = new Registry()
  registry.setDefaultLabels(labels)
  try {
    collectDefaultMetrics({ register: registry })
  } catch {
    // Bun lacks some of node's perf_hooks probes; the process metrics it can read still register.
  }
  return {
    registry,
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by route template and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
      return new Counter({ name, help, labelNames, registers: [registry] })
    },
    /**
     * A counter for paths that count every event: each bound child adds to a
     * plain number, which the counter takes up when it is read (a scrape).
     * prom-client's own inc hashes the labels on every call: ~0.7 µs per
     * delivered event over the counters of the WebSocket delivery path.
     */
    tally<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
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
    },
    /** A gauge; with `read`, its value is read at scrape time. */
    gauge<L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[] = [],
      read?: () => number,
    ) {
      return new Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        collect: read
          ? function () {
              this.set(read())
            }
          : undefined,
      })
    },
    /**
     * A histogram without labels for paths that observe every event: counts
     * per bucket in plain numbers, turned into the registry's values when it
     * is read. prom-client's Histogram hashes its labels and checks its value
     * on every observe (~0.4 µs per event on the WebSocket delivery path); the
     * text scraped is the same (cumulative buckets, +Inf, sum, count; tested).
     */
    tallyHistogram(name: string, help: string, buckets: number[]) {
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
    },
    histogram<L extends string>(
      name: string,
      help: string,
      buckets: number[],
      labelNames: readonly L[] = [],
    ) {
      return new Histogram({ name, help, buckets, labelNames, registers: [registry] })
    },
  }
}
