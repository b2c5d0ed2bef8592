import { describe, expect, it } from 'bun:test'
import pkg from '../../package.json'
import { client } from '../support/http'
import { waitFor } from '../support/wait'
import { useTestEnv } from '../support/env'

const env = await useTestEnv()
const inst = await env.instance({ INSTANCE_ID: 'health-1', FLY_REGION: 'ams' })
const api = client(inst)

function expectUnavailable(res: { status: number; headers: Headers; json: any }) {
  expect(res.status).toBe(503)
  expect(res.json.error.code).toBe('unavailable')
  expect(res.json.error.requestId).toBe(res.headers.get('x-request-id'))
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
}

describe('health', () => {
  it('answers /health/live with 200', async () => {
    const res = await api.get('/health/live')
    expect(res.status).toBe(200)
    expect(res.json).toEqual({ status: 'live' })
  })

  it('answers /health/ready with 200 when Postgres and Redis answer', async () => {
    const res = await api.get('/health/ready')
    expect(res.status).toBe(200)
    expect(res.json).toEqual({ status: 'ready' })
  })

  it('details each dependency with its latency, the instance, region, version and uptime', async () => {
    const res = await api.get('/health')
    expect(res.status).toBe(200)
    expect(res.json).toMatchObject({
      status: 'ok',
      instance: 'health-1',
      region: 'ams',
      version: pkg.version,
    })
    expect(res.json.uptimeSeconds).toBeGreaterThanOrEqual(0)
    expect(Object.keys(res.json.checks).sort()).toEqual(['postgres', 'redis'])
    for (const check of Object.values<any>(res.json.checks)) {
      expect(check.ok).toBe(true)
      expect(check.latencyMs).toBeGreaterThanOrEqual(0)
    }
  })

  it('answers /health/ready 503 in the error shape once a dependency fails', async () => {
    const broken = await env.instance()
    await broken.redis!.quit()
    const ready = await client(broken).get('/health/ready')
    expectUnavailable(ready)
    expect(ready.json.error.message).toContain('redis')
    const details = await client(broken).get('/health')
    expect(details.json.status).toBe('degraded')
    expect(details.json.checks.redis).toMatchObject({ ok: false, error: 'not connected' })
    expect(details.json.checks.postgres.ok).toBe(true)
    // liveness does not depend on anything
    expect((await client(broken).get('/health/live')).status).toBe(200)
  })

  it('answers /health/ready 503 when Postgres does not answer', async () => {
    const broken = await env.instance()
    await broken.database.close()
    const ready = await client(broken).get('/health/ready')
    expectUnavailable(ready)
    expect(ready.json.error.message).toContain('postgres')
    // /health is public: a driver's own error (hosts, ports, pool states) is logged, not shown
    const details = await client(broken).get('/health')
    expect(details.json.checks.postgres).toMatchObject({ ok: false, error: 'unavailable' })
  })

  it('answers /health/ready 503 as soon as the drain begins', async () => {
    const draining = await env.instance()
    expect((await client(draining).get('/health/ready')).status).toBe(200)
    let readyDuringStage: number | undefined
    draining.lifecycle.onDrain('probe', async () => {
      readyDuringStage = (await client(draining).get('/health/ready')).status
    })
    expect(await draining.lifecycle.drain(5000)).toBe(true)
    expect(readyDuringStage).toBe(503)
    expectUnavailable(await client(draining).get('/health/ready'))
    expect((await client(draining).get('/health')).json.status).toBe('draining')
    expect((await client(draining).get('/health/live')).status).toBe(200)
  })
})

describe('metrics', () => {
  it('serves Prometheus text with the request duration histogram by route template', async () => {
    await api.get('/health/live')
    await api.get('/v1/no-such-thing')
    const res = await api.get('/metrics')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/plain')
    expect(res.text).toContain('# TYPE http_request_duration_seconds histogram')
    expect(res.text).toMatch(
      /http_request_duration_seconds_count\{[^}]*method="GET"[^}]*route="\/health\/live"[^}]*status="200"[^}]*\} [1-9]/,
    )
    // unknown paths share one label: a scanner cannot blow up the series count
    expect(res.text).not.toContain('/v1/no-such-thing')
    expect(res.text).toContain('process_cpu_user_seconds_total')
  })

  it('requires METRICS_TOKEN as a bearer token when it is set', async () => {
    const guarded = client(await env.instance({ METRICS_TOKEN: 'metrics-token-123' }))
    const anonymous = await guarded.get('/metrics')
    expect(anonymous.status).toBe(401)
    expect(anonymous.json.error.code).toBe('unauthorized')
    expect((await guarded.get('/metrics', 'wrong-token-1234')).status).toBe(401)
    expect((await guarded.get('/metrics', 'metrics-token-12')).status).toBe(401)
    const ok = await guarded.get('/metrics', 'metrics-token-123')
    expect(ok.status).toBe(200)
    expect(ok.text).toContain('http_request_duration_seconds')
  })
})

describe('openapi', () => {
  it('ends every request it counts as in flight: the document, its page, an unknown path', async () => {
    const counted = await env.instance()
    const c = client(counted)
    for (const path of ['/openapi/json', '/openapi', '/v1/no-such-route', '/health/live'])
      expect((await c.get(path)).status).toBeOneOf([200, 404])
    // a request left counted would hold every drain for its whole budget
    await waitFor(() => counted.lifecycle.inflight === 0, 2000, 'no request in flight')
  })

  it('documents the Retry-After header of every 429 and 503 in the OpenAPI document', async () => {
    const doc = (await api.get('/openapi/json')).json
    const retried: string[] = []
    const missing: string[] = []
    for (const [path, item] of Object.entries<any>(doc.paths))
      for (const [method, op] of Object.entries<any>(item))
        for (const status of ['429', '503']) {
          const response = op.responses?.[status]
          if (!response) continue
          retried.push(`${method} ${path} ${status}`)
          if (response.headers?.['Retry-After']?.schema?.type !== 'integer')
            missing.push(`${method} ${path} ${status}`)
        }
    expect(retried.length).toBeGreaterThan(5)
    expect(missing).toEqual([])
  })

  it('declares every integer a response carries as a JSON integer, not also a string', async () => {
    const doc = (await api.get('/openapi/json')).json
    const integers: string[] = []
    const either: string[] = []
    const walk = (node: any, at: string) => {
      if (!node || typeof node !== 'object') return
      if (node.type === 'integer') integers.push(at)
      const kinds = Array.isArray(node.anyOf) ? node.anyOf.map((s: any) => s.type) : []
      if (kinds.includes('string') && kinds.includes('integer')) either.push(at)
      for (const [k, v] of Object.entries(node)) walk(v, `${at}/${k}`)
    }
    for (const [path, item] of Object.entries<any>(doc.paths))
      for (const [method, op] of Object.entries<any>(item))
        for (const [status, response] of Object.entries<any>(op.responses ?? {}))
          walk(response.content, `${method} ${path} ${status}`)
    expect(integers.length).toBeGreaterThan(50)
    expect(either).toEqual([])
  })

  it('serves an OpenAPI 3 document listing the auth and me routes with their errors', async () => {
    const res = await api.get('/openapi/json')
    expect(res.status).toBe(200)
    expect(res.json.openapi).toMatch(/^3\./)
    expect(res.json.info.title).toBe('Atelier')
    expect(res.json.paths['/v1/auth/register'].post).toBeDefined()
    expect(res.json.paths['/v1/auth/login'].post).toBeDefined()
    expect(res.json.paths['/v1/me'].get).toBeDefined()
    expect(Object.keys(res.json.paths['/v1/auth/register'].post.responses)).toEqual(
      expect.arrayContaining(['201', '409', '422']),
    )
    expect(res.json.paths['/v1/me'].get.security).toEqual([{ bearer: [] }])
  })

  it('gives every route that reads a JSON body its schema under application/json', async () => {
    const doc = (await api.get('/openapi/json')).json
    const json: string[] = []
    const untyped: string[] = []
    for (const [path, item] of Object.entries<any>(doc.paths))
      for (const [method, op] of Object.entries<any>(item)) {
        const content = op.requestBody?.content
        if (!content) continue
        if (content['multipart/form-data']) continue // uploads: their own detail says it
        if (content['application/json']?.schema?.type === 'object') json.push(`${method} ${path}`)
        else untyped.push(`${method} ${path}`)
      }
    expect(json).toEqual(expect.arrayContaining(['post /v1/auth/register', 'post /v1/generations']))
    expect(untyped).toEqual([])
  })

  it('lists the errors the global hooks answer: 400, 413 and 415 on writes, 503 on /v1', async () => {
    const doc = (await api.get('/openapi/json')).json
    const missing: string[] = []
    let writes = 0
    for (const [path, item] of Object.entries<any>(doc.paths))
      for (const [method, op] of Object.entries<any>(item)) {
        const statuses = Object.keys(op.responses ?? {})
        const want = [
          ...(['get', 'head', 'options'].includes(method) ? [] : ['400', '413', '415']),
          ...(path.startsWith('/v1/') ? ['503'] : []),
        ]
        if (want.includes('413')) writes++
        for (const status of want)
          if (!statuses.includes(status)) missing.push(`${method} ${path} ${status}`)
      }
    expect(writes).toBeGreaterThan(10)
    expect(missing).toEqual([])
    // in the error shape, as a route's own errors() entries are
    const op = doc.paths['/v1/auth/login'].post
    expect(op.responses['415'].content['application/json'].schema.properties.error).toBeDefined()
  })

  it('documents the WebSocket upgrade, its refusals and its protocol', async () => {
    const doc = (await api.get('/openapi/json')).json
    const op = doc.paths['/v1/ws']?.get
    expect(Object.keys(op?.responses ?? {}).sort()).toEqual(['101', '403', '404', '503'])
    for (const words of ['"type": "auth"', '4401', '4408', 'resync', '1012', '1013'])
      expect(op.description).toContain(words)
    // and what it says is what the route does: no upgrade, no socket
    const plain = await api.get('/v1/ws')
    expect([plain.status, plain.json.error.code]).toEqual([404, 'not_found'])
  })

  it('documents what the image and metrics routes answer with, and Retry-After on 409', async () => {
    const doc = (await api.get('/openapi/json')).json
    expect(Object.keys(doc.paths['/v1/media/{id}'].get.responses['200'].content)).toEqual(
      expect.arrayContaining(['image/png', 'image/webp', 'image/jpeg']),
    )
    expect(Object.keys(doc.paths['/metrics'].get.responses['200'].content)[0]).toStartWith(
      'text/plain',
    )
    const conflict = doc.paths['/v1/generations'].post.responses['409']
    expect(conflict.headers?.['Retry-After']?.schema?.type).toBe('integer')
  })

  it('declares Idempotency-Key on every POST that creates (answers 201 or 202)', async () => {
    const doc = (await api.get('/openapi/json')).json
    const creating: string[] = []
    const without: string[] = []
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      const op = item.post
      if (!op?.responses?.['201'] && !op?.responses?.['202']) continue
      creating.push(path)
      const names = (op.parameters ?? []).map((p: any) => `${p.in} ${p.name.toLowerCase()}`)
      if (!names.includes('header idempotency-key')) without.push(path)
    }
    expect(creating).toEqual(
      expect.arrayContaining([
        '/v1/auth/register',
        '/v1/admin/library/poses',
        '/v1/generations',
        '/v1/uploads',
      ]),
    )
    expect(without).toEqual([])
  })

  it('serves the API docs page at /openapi', async () => {
    const res = await api.get('/openapi')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/html')
  })

  it('serves the pinned Scalar bundle itself, immutable, under a CSP allowing only its own scripts', async () => {
    const page = await api.get('/openapi')
    const csp = page.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("default-src 'none'")
    const sources = [...page.text.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((m) => m[1]!)
    const { version } = await Bun.file('node_modules/@scalar/api-reference/package.json').json()
    expect(sources).toEqual([`/openapi/assets/scalar-api-reference-${version}.js`])
    expect(page.text).not.toContain('cdn.jsdelivr.net')
    const bundle = await api.get(sources[0]!)
    expect(bundle.status).toBe(200)
    expect(bundle.headers.get('content-type')).toStartWith('text/javascript')
    expect(bundle.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    expect(bundle.text).toContain('@scalar/api-reference')
    // pinned to an exact version in package.json, never a range or latest
    const pkg = await Bun.file('package.json').json()
    expect(pkg.dependencies['@scalar/api-reference']).toBe(version)
  })
})
