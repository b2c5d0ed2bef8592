import type { openapi } from '@elysiajs/openapi'
import { Elysia } from 'elysia'
import { dirname, join } from 'node:path'
import { pathOf } from './url'

/**
 * The API docs page (/openapi) without a third party: the Scalar bundle is the
 * pinned `@scalar/api-reference` npm package's standalone build, served by the
 * app under a URL that names its version (so it is immutable for a year), and
 * the page carries a Content-Security-Policy that lets scripts come from this
 * origin only. Offline, or behind a proxy that allows only this host, the page
 * still works, and a CDN can never change the script under an admin's token.
 */
const pkgPath = Bun.resolveSync('@scalar/api-reference/package.json', import.meta.dir)
const version = ((await Bun.file(pkgPath).json()) as { version: string }).version
const bundle = Bun.file(join(dirname(pkgPath), 'dist/browser/standalone.js'))

/** Where the page loads the bundle from: the openapi plugin's `scalar.cdn`. */
export const DOCS_BUNDLE_PATH = `/openapi/assets/scalar-api-reference-${version}.js`

type ScalarOptions = NonNullable<NonNullable<Parameters<typeof openapi>[0]>['scalar']>

/** Scalar options that keep the page on this origin: no web fonts, no hosted client. */
export const DOCS_SCALAR_OPTIONS = {
  cdn: DOCS_BUNDLE_PATH,
  version,
  withDefaultFonts: false,
  hideClientButton: true,
  showDeveloperTools: 'never',
  // the plugin's type lists every option; Scalar defaults the ones not given
} as ScalarOptions

/**
 * Scripts only from this origin; Scalar injects its styles and renders icons
 * as data: and blob: URLs; it fetches /openapi/json. The inline element that
 * carries Scalar's configuration is data, not code: it never runs.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

export function docsRoutes(pagePath: string) {
  return new Elysia({ name: 'docs' })
    .onRequest(({ request, set }) => {
      // the plugin's page is its own Response; headers set here are merged into it
      if (pathOf(request.url) === pagePath) {
        set.headers['content-security-policy'] = DOCS_CSP
        set.headers['referrer-policy'] = 'no-referrer'
        set.headers['x-content-type-options'] = 'nosniff'
      }
    })
    .get(
      DOCS_BUNDLE_PATH,
      () =>
        new Response(bundle, {
          headers: {
            'content-type': 'text/javascript; charset=utf-8',
            // the URL names the package version: its bytes never change
            'cache-control': 'public, max-age=31536000, immutable',
            'x-content-type-options': 'nosniff',
          },
        }),
      { detail: { hide: true } },
    )
}
