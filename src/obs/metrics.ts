import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { makeTally, makeTallyHistogram } from './tally'

/**
 * One registry per app instance, so tests that build several apps in one
 * process get separate figures. Rooms add their own metrics to `registry`.
 */
export type Metrics = ReturnType<typeof makeMetrics>

/** `labels`: the default labels of every metric (the instance id). */
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
    /** A counter for paths that count every event (tally.ts): bind a child once, inc it per event. */
    tally<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
      return makeTally(registry, name, help, labelNames)
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
    /** A histogram without labels for paths that observe every event (tally.ts). */
    tallyHistogram(name: string, help: string, buckets: number[]) {
      return makeTallyHistogram(registry, name, help, buckets)
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
