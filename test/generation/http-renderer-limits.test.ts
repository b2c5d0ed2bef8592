import { describe, expect, it } from 'bun:test'
import { PermanentError } from '../../src/errors'
import { RetryLater } from '../../src/generation/renderers/renderer'
import { hang, imageResponse } from './fake-inference'
import { failure, useHttpRendererFixture } from './http-renderer-fixture'
import { libraryInput, never } from './fixtures'

const { server, png, renderer } = await useHttpRendererFixture()
const cooldown = () => Bun.sleep(60) // the breaker's 50 ms cooldown is the behaviour under test
const ok = () => imageResponse(png)
const down = () => new Response('down', { status: 500 })

describe('http renderer: circuit breaker', () => {
  it('opens after 3 consecutive failures and then fails fast without calling the provider', async () => {
    const r = renderer()
    server.respond = down
    for (let i = 0; i < 3; i++)
      expect(await failure(r.render(libraryInput(), never()))).toBeInstanceOf(RetryLater)
    expect(server.requests).toBe(3)
    expect(r.state()).toBe('open')
    const fast = (await failure(r.render(libraryInput(), never()))) as RetryLater
    expect(fast).toBeInstanceOf(RetryLater)
    expect(fast.message).toContain('open')
    expect(fast.retryAfterMs).toBeGreaterThan(0)
    expect(fast.retryAfterMs).toBeLessThanOrEqual(50)
    expect(server.requests).toBe(3)
  })

  it('lets one probe through after the cooldown, and closes when it succeeds', async () => {
    const r = renderer()
    server.respond = down
    for (let i = 0; i < 3; i++) await failure(r.render(libraryInput(), never()))
    expect(r.state()).toBe('open')
    await cooldown()
    expect(r.state()).toBe('half-open')
    const gate = Promise.withResolvers<void>()
    server.respond = async () => {
      await gate.promise
      return ok()
    }
    const probe = r.render(libraryInput(), never())
    await server.whenInFlight(1)
    // while the probe is out, everyone else is refused without a request
    expect(await failure(r.render(libraryInput(), never()))).toBeInstanceOf(RetryLater)
    expect(server.requests).toBe(4)
    gate.resolve()
    expect((await probe).contentType).toBe('image/png')
    expect(r.state()).toBe('closed')
    await r.render(libraryInput(), never())
    expect(server.requests).toBe(5)
  })

  it('reopens for a fresh cooldown when the probe fails', async () => {
    const r = renderer()
    server.respond = down
    for (let i = 0; i < 3; i++) await failure(r.render(libraryInput(), never()))
    await cooldown()
    expect(await failure(r.render(libraryInput(), never()))).toBeInstanceOf(RetryLater)
    expect(server.requests).toBe(4)
    expect(r.state()).toBe('open')
    await failure(r.render(libraryInput(), never()))
    expect(server.requests).toBe(4)
  })

  it('does not count a 4xx or a caller’s abort as a provider failure', async () => {
    const r = renderer()
    server.respond = () => new Response('no', { status: 422 })
    for (let i = 0; i < 5; i++)
      expect(await failure(r.render(libraryInput(), never()))).toBeInstanceOf(PermanentError)
    server.respond = hang
    for (let i = 0; i < 5; i++) {
      const controller = new AbortController()
      const pending = r.render(libraryInput(), controller.signal)
      await server.whenInFlight(1)
      controller.abort()
      await failure(pending)
    }
    expect(r.state()).toBe('closed')
  })

  it('resets the count on a success between failures', async () => {
    const r = renderer()
    for (const respond of [down, down, ok, down, down]) {
      server.respond = respond
      await r.render(libraryInput(), never()).catch(() => {})
    }
    expect(r.state()).toBe('closed')
  })
})

describe('http renderer: concurrency limit', () => {
  it('never has more than maxConcurrency requests in flight', async () => {
    const r = renderer({ maxConcurrency: 2 })
    const gate = Promise.withResolvers<void>()
    server.respond = async () => {
      await gate.promise
      return ok()
    }
    const renders = Array.from({ length: 6 }, (_, i) =>
      r.render(libraryInput({ itemKey: `k${i}` }), never()),
    )
    await server.whenInFlight(2)
    expect(r.inFlight()).toBe(2)
    expect(r.waiting()).toBe(4)
    expect(server.requests).toBe(2)
    gate.resolve()
    const outs = await Promise.all(renders)
    expect(outs).toHaveLength(6)
    expect(server.requests).toBe(6)
    expect(server.maxInFlight).toBe(2)
    expect(r.inFlight()).toBe(0)
  })

  it('drops a waiter whose signal aborts, before it ever reaches the provider', async () => {
    const r = renderer({ maxConcurrency: 1 })
    const gate = Promise.withResolvers<void>()
    server.respond = async () => {
      await gate.promise
      return ok()
    }
    const first = r.render(libraryInput(), never())
    await server.whenInFlight(1)
    const controller = new AbortController()
    const waiter = r.render(libraryInput({ itemKey: 'waiter' }), controller.signal)
    expect(r.waiting()).toBe(1)
    controller.abort(new Error('gave up waiting'))
    expect((await failure(waiter)).message).toBe('gave up waiting')
    expect(r.waiting()).toBe(0)
    gate.resolve()
    await first
    expect(server.requests).toBe(1)
  })
})
