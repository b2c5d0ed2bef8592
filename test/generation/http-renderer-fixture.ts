import { afterAll, beforeEach } from 'bun:test'
import { makeHttpRenderer, type HttpRendererDeps } from '../../src/generation/renderers/http'
import { imageResponse, startFakeInference } from './fake-inference'
import { sampleImage } from './fixtures'

/**
 * The fake inference server and a renderer factory for one test file: the
 * server answers with a PNG before each test, every renderer made is closed
 * and the server stopped after the file.
 */
export async function useHttpRendererFixture() {
  const server = await startFakeInference()
  const png = await sampleImage('png')
  const renderers: Array<{ close(): Promise<void> }> = []

  beforeEach(() => {
    server.reset()
    server.respond = () => imageResponse(png)
  })
  afterAll(async () => {
    for (const r of renderers) await r.close()
    await server.stop()
  })

  function renderer(options: Partial<HttpRendererDeps> = {}) {
    const made = makeHttpRenderer({
      url: server.url,
      token: 'test-token',
      timeoutMs: 5_000,
      maxConcurrency: 4,
      maxBytes: 1024 * 1024,
      breaker: { failureThreshold: 3, cooldownMs: 50 },
      ...options,
    })
    renderers.push(made)
    return made
  }

  return { server, png, renderer }
}

/** The error a render failed with; fails the test when it succeeded. */
export function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected the render to fail')
    },
    (err: Error) => err,
  )
}
