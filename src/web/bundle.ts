import { join } from 'node:path'
import { COCO_SKELETON } from '../library/keypoints'

/**
 * Builds the browser page with Bun's bundler: client/main.ts → one minified
 * ES module, app.css (and its @imports) → one stylesheet, and index.html with
 * both URLs versioned by content hash (`/app.js?v=<hash>`), so the assets can
 * be cached for a year and a new build is fetched at once.
 */
export type Asset = { body: string; contentType: string; etag: string; version: string }
export type WebAssets = { html: Asset; js: Asset; css: Asset }

const DIR = import.meta.dir

export async function buildWebAssets(): Promise<WebAssets> {
  const [js, css] = await Promise.all([
    bundle(join(DIR, 'client', 'main.ts'), 'text/javascript; charset=utf-8', {
      // the skeleton's one source is the library room; importing that module would
      // pull its TypeBox schemas (and Elysia) into the bundle, so its value is inlined
      __COCO_SKELETON__: JSON.stringify(COCO_SKELETON),
    }),
    bundle(join(DIR, 'app.css'), 'text/css; charset=utf-8'),
  ])
  const template = await Bun.file(join(DIR, 'index.html')).text()
  const html = versioned(versioned(template, 'href="/app.css"', css), 'src="/app.js"', js)
  return { html: asset(html, 'text/html; charset=utf-8'), js, css }
}

async function bundle(entry: string, contentType: string, define: Record<string, string> = {}) {
  const result = await Bun.build({
    entrypoints: [entry],
    target: 'browser',
    format: 'esm',
    minify: true,
    sourcemap: 'none',
    define,
  })
  const output = result.outputs[0]
  if (!result.success || !output) throw new Error(`web bundle failed: ${entry}`)
  return asset(await output.text(), contentType)
}

function asset(body: string, contentType: string): Asset {
  const version = new Bun.CryptoHasher('sha256').update(body).digest('hex').slice(0, 16)
  return { body, contentType, etag: `"${version}"`, version }
}

/** Rewrites `attr="/x"` to `attr="/x?v=<hash>"`; a template without it is a bug. */
function versioned(html: string, attribute: string, target: Asset): string {
  if (!html.includes(attribute)) throw new Error(`index.html has no ${attribute}`)
  return html.replace(attribute, `${attribute.slice(0, -1)}?v=${target.version}"`)
}
