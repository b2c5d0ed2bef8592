import type { Metrics } from '../obs/metrics'
import { pathOf } from '../http/url'

/**
 * Upload figures for /metrics:
 *  - `uploads_total{outcome}`: `stored` when an upload is recorded (in the
 *    transaction's wake, once per upload: a replayed Idempotency-Key response
 *    is not a second upload), otherwise the refusal by API.md's error code
 *    (`payload_too_large` 413, `unsupported_media_type` 415,
 *    `validation_failed` 422, `rate_limited` 429, …), read from the response
 *    of POST /v1/uploads, so a 413 answered before routing (a declared
 *    Content-Length over every limit) counts too;
 *  - `uploads_stored_bytes_total`: the bytes of the stored images (metadata
 *    stripped), what UPLOAD_QUOTA_BYTES counts; thumbnails not included.
 */
export type UploadMetrics = ReturnType<typeof makeUploadMetrics>

const REFUSALS: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed',
  429: 'rate_limited',
  503: 'unavailable',
}

const UPLOAD_PATH = /^\/v1\/uploads\/?$/

export function makeUploadMetrics(metrics: Metrics) {
  const outcomes = metrics.counter('uploads_total', 'Uploads by outcome', ['outcome'])
  const bytes = metrics.counter('uploads_stored_bytes_total', 'Bytes of stored uploads')
  // every outcome is present from the first scrape, at 0
  for (const outcome of [
    'stored',
    'payload_too_large',
    'unsupported_media_type',
    'validation_failed',
    'rate_limited',
  ])
    outcomes.inc({ outcome }, 0)
  bytes.inc(0)
  return {
    /** One upload recorded, of `size` stored bytes. */
    stored(size: number) {
      outcomes.inc({ outcome: 'stored' })
      bytes.inc(size)
    },
    /** The app's response observer: counts POST /v1/uploads answered with an error. */
    observe(r: { method: string; url: string; status: number }) {
      if (r.status < 400 || r.method !== 'POST' || !UPLOAD_PATH.test(pathOf(r.url))) return
      outcomes.inc({ outcome: REFUSALS[r.status] ?? (r.status >= 500 ? 'error' : 'refused') })
    },
  }
}
