import { Elysia } from 'elysia'
import type { Logger } from 'pino'
import { buildWebAssets, type Asset, type WebAssets } from './bundle'
import { searchParamsOf } from '../http/url'

export type WebRoutesDeps = { log: Logger }

/**
 * The browser client: GET / (the page), /app.js and /app.css. Bundled once,
 * at the first request, and kept in memory. The page is revalidated on every
 * load (no-cache + ETag); the assets it links carry their content hash, so
 * at that URL they are immutable for a year. Hidden from the OpenAPI document.
 */
const PAGE_HEADERS = {
  // the page's own script and style only; images: signed same-origin URLs (and the inline favicon)
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
}

export function webRoutes(deps: WebRoutesDeps) {
  let assets: Promise<WebAssets> | undefined
  const load = () =>
    (assets ??= timed(deps.log).catch((error) => {
      assets = undefined // a failed build is retried by the next request
      throw error
    }))

  function serve(request: Request, asset: Asset, immutable: boolean, extra = {}) {
    const headers = {
      'content-type': asset.contentType,
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      etag: asset.etag,
      'x-content-type-options': 'nosniff',
      ...extra,
    }
    if (request.headers.get('if-none-match') === asset.etag)
      return new Response(null, { status: 304, headers })
    return new Response(asset.body, { headers })
  }

  const current = (url: string, asset: Asset) => searchParamsOf(url).get('v') === asset.version

  return new Elysia({ name: 'web' })
    .get('/', async ({ request }) => serve(request, (await load()).html, false, PAGE_HEADERS), {
      detail: { hide: true },
    })
    .get(
      '/app.js',
      async ({ request }) => {
        const { js } = await load()
        return serve(request, js, current(request.url, js))
      },
      { detail: { hide: true } },
    )
    .get(
      '/app.css',
      async ({ request }) => {
        const { css } = await load()
        return serve(request, css, current(request.url, css))
      },
      { detail: { hide: true } },
    )
}

async function timed(log: Logger): Promise<WebAssets> {
  const started = performance.now()
  const assets = await buildWebAssets()
  const ms = Math.round(performance.now() - started)
  log.info(
    { ms, jsBytes: assets.js.body.length, cssBytes: assets.css.body.length },
    'web client built',
  )
  return assets
}
