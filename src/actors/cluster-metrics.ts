import type { Metrics } from '../obs/metrics'

/**
 * The cluster's figures (README "Operator view"): Prometheus series, and the
 * per-instance counts /v1/admin/stats shows (takeovers, forwards per second
 * over the last 10 s).
 */
export type ClusterMetrics = ReturnType<typeof makeClusterMetrics>

const RATE_WINDOW_MS = 10_000

export function makeClusterMetrics(
  name: string,
  metrics: Metrics | undefined,
  owned: () => number,
) {
  metrics?.gauge(`${name}_owned`, 'Actors this instance owns', [], owned)
  const forwardTimes: number[] = []
  const counts = { takeovers: 0 }
  const takeoverCount = metrics?.counter(
    `${name}_takeovers_total`,
    'Users claimed over a dead owner',
  )
  const forwardSeconds = metrics?.histogram(
    `${name}_forward_seconds`,
    'Forwarded command round trip',
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
  )
  return {
    forwarded: metrics?.counter(`${name}_forwarded_total`, 'Commands forwarded', ['result']),
    bounced: metrics?.counter(`${name}_bounced_total`, 'Forwards answered "moved" or lost inbox'),
    fencedBatches: metrics?.counter(`${name}_fenced_batches_total`, 'Batches refused by the epoch'),
    recovered: metrics?.counter(`${name}_inbox_recovered_total`, 'Dead inbox entries processed'),
    handoffSeconds: metrics?.histogram(
      `${name}_handoff_seconds`,
      'Hand-off on drain',
      [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ),
    tookOver() {
      counts.takeovers++
      takeoverCount?.inc()
    },
    /** A forward answered after `ms`: its round trip, and one more for the per-second figure. */
    forwardedIn(ms: number) {
      forwardSeconds?.observe(ms / 1000)
      forwardTimes.push(Date.now())
      if (forwardTimes.length > 100_000) forwardTimes.splice(0, 50_000)
    },
    figures() {
      const since = Date.now() - RATE_WINDOW_MS
      let recent = 0
      for (let i = forwardTimes.length - 1; i >= 0 && forwardTimes[i]! > since; i--) recent++
      return { forwardsPerSecond: recent / (RATE_WINDOW_MS / 1000), takeovers: counts.takeovers }
    },
  }
}
