import { describe, expect, it } from 'bun:test'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'

/** GET /, /app.js and /app.css over HTTP: content types, caching, CSP; no browser needed. */
const env = await useTestEnv()
const inst = await env.instance({ RENDER_CONCURRENCY: '0' })
const api = client(inst)

const get = (path: string, headers: Record<string, string> = {}) =>
  inst.app.handle(new Request(`http://localhost${path}`, { headers }))

describe('web routes', () => {
  it('serves the page with a CSP, no-cache and content-hashed asset URLs', async () => {
    const res = await get('/')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('no-cache')
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(res.headers.get('referrer-policy')).toBe('no-referrer')
    const html = await res.text()
    expect(html).toMatch(/<script type="module" src="\/app\.js\?v=[0-9a-f]{16}"><\/script>/)
    expect(html).toMatch(/<link rel="stylesheet" href="\/app\.css\?v=[0-9a-f]{16}" \/>/)
  })

  it('caches a versioned asset for a year and answers If-None-Match with 304', async () => {
    const html = await (await get('/')).text()
    const js = html.match(/src="(\/app\.js\?v=[0-9a-f]+)"/)![1]!
    const css = html.match(/href="(\/app\.css\?v=[0-9a-f]+)"/)![1]!

    const script = await get(js)
    expect(script.status).toBe(200)
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    const body = await script.text()
    // the client only: no server code (Elysia, TypeBox) bundled by accident
    expect(body.length).toBeLessThan(64 * 1024)
    expect(body).not.toContain('elysia')

    const etag = script.headers.get('etag')!
    const again = await get(js, { 'if-none-match': etag })
    expect(again.status).toBe(304)
    expect(await again.text()).toBe('')

    // an unversioned or outdated URL must be revalidated
    expect((await get('/app.js')).headers.get('cache-control')).toBe('no-cache')
    expect((await get('/app.js?v=0000')).headers.get('cache-control')).toBe('no-cache')

    const style = await get(css)
    expect(style.headers.get('content-type')).toBe('text/css; charset=utf-8')
    expect(await style.text()).toContain('.gallery')
  })

  it('leaves the page out of the OpenAPI document', async () => {
    const { json } = await api.get('/openapi/json')
    expect(Object.keys(json.paths)).not.toContain('/')
    expect(Object.keys(json.paths)).not.toContain('/app.js')
  })
})
