import type { Metrics } from '../obs/metrics'

export type GatewayMetrics = ReturnType<typeof gatewayMetrics>

/** The gateway's figures; tallies bound once, since a child of a tally counts in a plain number. */
export function gatewayMetrics(m: Metrics | undefined, connections: () => number) {
  m?.gauge('ws_connections', 'Open WebSocket connections', [], connections)
  const delivered = m?.tally('ws_events_delivered_total', 'Events sent to sockets', ['via'])
  return {
    deliveredLive: delivered?.child({ via: 'live' }),
    deliveredReplay: delivered?.child({ via: 'replay' }),
    latency: m?.tallyHistogram(
      'ws_delivery_latency_seconds',
      'From append to send, for live events',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    ),
    closes: m?.counter('ws_closes_total', 'WebSocket closes by code', ['code']),
    catchUps: m?.counter(
      'ws_catch_up_reads_total',
      'Replays started because a live event was not the next one of its user',
    ),
  }
}
