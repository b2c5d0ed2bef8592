import { PermanentError, toError } from '../../errors'
import { DEFAULT_MAX_PIXELS } from '../../media/images'
import { makeCircuitBreaker, type BreakerPermit, type BreakerState } from './circuit-breaker'
import { checkContentType, checkImage, readCapped, statusError } from './http-response'
import { makeSemaphore } from './semaphore'
import {
  DEFAULT_RENDER_SIZE,
  RetryLater,
  type RenderInput,
  type RenderOutput,
  type Renderer,
} from './renderer'

export type HttpRendererDeps = {
  /** RENDER_HTTP_URL: the provider's render endpoint. */
  url: string
  /** RENDER_HTTP_TOKEN, sent as `Authorization: Bearer <token>`. */
  token: string
  /** RENDER_TIMEOUT_MS: one request, body included. Default 60_000. */
  timeoutMs?: number
  /** Requests in flight at once from this instance; others wait. Default 4. */
  maxConcurrency?: number
  /** Largest response body accepted. Default 20 MiB. */
  maxBytes?: number
  /** Largest image accepted, in pixels. Default 40 M. */
  maxPixels?: number
  /** Defaults: 5 consecutive failures open it for 30_000 ms. */
  breaker?: { failureThreshold?: number; cooldownMs?: number }
  onBreakerChange?: (to: BreakerState, from: BreakerState) => void
  fetch?: (url: string, init: RequestInit) => Promise<Response>
}

export type HttpRenderer = Renderer & {
  /** The circuit breaker's state, for metrics. */
  state(): BreakerState
  inFlight(): number
  waiting(): number
}

/**
 * Renders through an inference provider over HTTP: POST the RenderInput as
 * JSON, get image bytes back. Per call: fail fast if the breaker is open,
 * wait for a concurrency slot, take a breaker permit, then one request under
 * the caller's signal and a timeout. What counts against the breaker: 408,
 * 429, 5xx, network errors, timeouts and unusable bodies. A 4xx is a healthy
 * provider refusing a bad request: a PermanentError, and a success for the
 * breaker. A call its caller aborted counts neither way.
 */
export function makeHttpRenderer(deps: HttpRendererDeps): HttpRenderer {
  const provider = providerOf(deps)
  const slots = makeSemaphore(deps.maxConcurrency ?? 4)
  const breaker = makeCircuitBreaker({ ...deps.breaker, onStateChange: deps.onBreakerChange })
  const closing = new AbortController()
  const inFlight = new Set<Promise<unknown>>()

  async function render(input: RenderInput, signal: AbortSignal): Promise<RenderOutput> {
    signal.throwIfAborted()
    if (closing.signal.aborted) throw new RetryLater('the http renderer is closed')
    breaker.check()
    const combined = AbortSignal.any([signal, closing.signal])
    const release = await slots.acquire(combined).catch((err) => {
      throw closedOr(err)
    })
    try {
      const permit = breaker.acquire()
      try {
        const output = await request(provider, input, combined)
        permit.success()
        return output
      } catch (err) {
        report(permit, err, combined)
        throw closedOr(err)
      }
    } finally {
      release()
    }
  }

  // a render cut short by close() is handed back to the queue as transient
  function closedOr(err: unknown): unknown {
    return closing.signal.aborted ? new RetryLater('the http renderer is closed') : err
  }

  return {
    name: 'http',
    render(input, signal) {
      const work = render(input, signal)
      inFlight.add(work)
      const settle = () => inFlight.delete(work)
      work.then(settle, settle)
      return work
    },
    async close() {
      closing.abort()
      await Promise.allSettled([...inFlight])
    },
    state: () => breaker.state(),
    inFlight: () => slots.inFlight(),
    waiting: () => slots.waiting(),
  }
}

/** The provider and its limits, defaults filled in. */
type Provider = ReturnType<typeof providerOf>

function providerOf(deps: HttpRendererDeps) {
  return {
    url: deps.url,
    token: deps.token,
    timeoutMs: deps.timeoutMs ?? 60_000,
    maxBytes: deps.maxBytes ?? 20 * 1024 * 1024,
    maxPixels: deps.maxPixels ?? DEFAULT_MAX_PIXELS,
    fetch: deps.fetch ?? ((url: string, init: RequestInit) => fetch(url, init)),
  }
}

/** One request under the caller's signal and the timeout; what fails is a RetryLater or a PermanentError. */
async function request(
  p: Provider,
  input: RenderInput,
  signal: AbortSignal,
): Promise<RenderOutput> {
  const timeout = AbortSignal.timeout(p.timeoutMs)
  try {
    const response = await p.fetch(p.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${p.token}`,
        'content-type': 'application/json',
        accept: 'image/png, image/webp, image/jpeg',
        // lets a provider that supports it answer a retried item from its cache
        'idempotency-key': `${input.generationId}:${input.itemKey}`,
      },
      body: JSON.stringify({ ...input, size: input.size ?? DEFAULT_RENDER_SIZE }),
      // a redirect could carry the bearer token elsewhere; a provider must answer in place
      redirect: 'manual',
      signal: AbortSignal.any([signal, timeout]),
    })
    if (!response.ok) {
      await response.body?.cancel().catch(() => {})
      throw statusError(response)
    }
    checkContentType(response)
    return await checkImage(await readCapped(response, p.maxBytes), p.maxPixels)
  } catch (err) {
    if (signal.aborted || err instanceof RetryLater || err instanceof PermanentError) throw err
    if (timeout.aborted)
      throw new RetryLater(`the provider did not answer within ${p.timeoutMs} ms`, undefined, {
        cause: err,
      })
    throw new RetryLater('the provider could not be reached', undefined, { cause: toError(err) })
  }
}

function report(permit: BreakerPermit, err: unknown, signal: AbortSignal): void {
  if (signal.aborted) permit.release()
  else if (err instanceof PermanentError) permit.success()
  else permit.failure()
}
