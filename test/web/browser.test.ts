import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import sharp from 'sharp'
import type { Instance } from '../../src/server'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'

/**
 * The browser client in real headless Chromium (Debian's `chromium` package,
 * driven by playwright-core, which downloads no browser) against a real
 * listening instance: sign up, generate, watch the gallery fill live, lose
 * the network and get the missed events on reconnect. Screenshots go to the
 * file's temp dir, or to SCREENSHOT_DIR when that is set (to keep them).
 */
const CHROMIUM = '/usr/bin/chromium'
const hasChromium = existsSync(CHROMIUM)
if (!hasChromium)
  console.warn(
    `test/web/browser.test.ts: skipped, ${CHROMIUM} not found. Install Chromium to run it: ` +
      'apt-get install -y --no-install-recommends chromium (.ci/run does this)',
  )

const TIMEOUT_MS = 90_000
const env = await useTestEnv()
const screenshots = process.env.SCREENSHOT_DIR ?? env.dataDir
mkdirSync(screenshots, { recursive: true })

let inst: Instance
let base: string
let browser: Browser | undefined
let page: Page

beforeAll(async () => {
  // the page's origin must be allowed to open the socket, so the port is chosen first
  const probe = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = probe.port!
  probe.stop(true)
  base = `http://127.0.0.1:${port}`
  inst = await env.instance({
    ALLOWED_ORIGINS: base,
    RENDER_SIZE: '128',
    RENDER_CONCURRENCY: '2',
    SIGNUP_CREDITS: '300',
  })
  inst.app.listen({ port, hostname: '127.0.0.1' })
  if (!hasChromium) return
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  page.setDefaultTimeout(30_000)
})

afterAll(async () => {
  await browser?.close()
  inst?.app.server?.stop(true)
})

/** Resolves when the gallery holds `n` images that have loaded (naturalWidth > 0). */
function galleryLoaded(n: number) {
  return page.waitForFunction((count) => {
    const imgs = Array.from(document.querySelectorAll<HTMLImageElement>('.gallery img'))
    return imgs.length === count && imgs.every((img) => img.complete && img.naturalWidth > 0)
  }, n)
}

async function token(): Promise<string> {
  const t = await page.evaluate(() => sessionStorage.getItem('atelier.token'))
  expect(t).toBeString()
  return t!
}

describe('browser client', () => {
  it.skipIf(!hasChromium)(
    'signs up, generates from poses and fills the gallery live',
    async () => {
      await page.goto(`${base}/`)
      await page.getByLabel('Email').fill(`web-${crypto.randomUUID()}@example.com`)
      await page.getByLabel('Password').fill('correct horse battery')
      await page.getByRole('button', { name: 'Create account' }).click()
      await page.getByRole('heading', { name: 'New generation' }).waitFor()
      await page.locator('#connection[data-state="live"]').waitFor()
      expect(page.url()).not.toContain(await token())

      // two poses × two variations = 4 images, 120 of the 300 signup credits
      const poses = page.locator('#poses').getByRole('checkbox')
      await poses.nth(1).waitFor()
      await poses.nth(0).check()
      await poses.nth(1).check()
      await page.getByLabel('Variations').fill('2')
      await page.getByRole('button', { name: 'Generate' }).click()

      const card = page.locator('.gen').first()
      await card.locator('progress').waitFor()
      await galleryLoaded(4)
      await page.locator('.gen[data-status="succeeded"]').waitFor()
      const progress = await card
        .locator('progress')
        .evaluate((p: HTMLProgressElement) => ({ value: p.value, max: p.max }))
      expect(progress).toEqual({ value: 4, max: 4 })
      expect(await card.locator('.gen-status').textContent()).toBe('Done: 4 images ready')
      const alts = await card
        .locator('.gallery img')
        .evaluateAll((imgs) => imgs.map((i) => i.getAttribute('alt') ?? ''))
      expect(alts.every((a) => /variation [12]$/.test(a))).toBe(true)

      // the balance shown is the server's, and the ledger shows the grant and the charge
      const { balance } = (await client(inst).get('/v1/credits', await token())).json
      expect(balance).toBe(180)
      await page.waitForFunction(
        (b) => document.getElementById('balance')?.textContent === String(b),
        balance,
      )
      await page.locator('#ledger-rows tr').nth(1).waitFor()
      await page.evaluate(() => scrollTo(0, 0)) // the sticky header belongs at the top
      await page.screenshot({ path: join(screenshots, 'browser-desktop.png'), fullPage: true })
    },
    TIMEOUT_MS,
  )

  it.skipIf(!hasChromium)(
    'searches the library by text and tag chips, and charts the day’s images and credits',
    async () => {
      const api = client(inst)
      const shown = () =>
        page.locator('#poses .pose-name').evaluateAll((els) => els.map((e) => e.textContent))
      const namesFor = async (query: string) =>
        (await api.get(`/v1/library/poses?limit=24${query}`)).json.items.map((p: any) => p.name)

      // typing filters the picker to what ?q= answers
      await page.getByLabel('Search poses').fill('side-view')
      const expected = await namesFor('&q=side-view')
      expect(expected.length).toBeGreaterThan(1)
      await page.waitForFunction(
        (names) =>
          JSON.stringify(
            Array.from(document.querySelectorAll('#poses .pose-name')).map((e) => e.textContent),
          ) === JSON.stringify(names),
        expected,
      )

      // a chip narrows it further: every pressed tag must match
      const chip = page.locator('#tag-chips .chip').first()
      const tag = (await chip.getAttribute('data-tag'))!
      await chip.click()
      expect(await chip.getAttribute('aria-pressed')).toBe('true')
      const both = await namesFor(`&q=side-view&tag=${tag}`)
      await page.waitForFunction(
        (names) =>
          JSON.stringify(
            Array.from(document.querySelectorAll('#poses .pose-name')).map((e) => e.textContent),
          ) === JSON.stringify(names),
        both,
      )
      expect(await shown()).toEqual(both)
      await page.getByLabel('Search poses').fill('no pose is called this')
      await page.locator('#poses-status', { hasText: 'No poses match this search.' }).waitFor()
      await page.getByLabel('Search poses').fill('')
      await chip.click()
      await page.locator('#poses .pose').nth(23).waitFor()

      // the stats panel: 4 images and 120 credits today, one bar per day of 30
      await page.waitForFunction(() => {
        const s = document.getElementById('stats-summary')
        return s?.dataset.images === '4' && s.dataset.credits === '120'
      })
      const bars = page.locator('#stats-chart svg rect.bar')
      expect(await bars.count()).toBe(30)
      const today = new Date().toISOString().slice(0, 10)
      expect(await bars.last().getAttribute('data-date')).toBe(today)
      expect(await bars.last().getAttribute('data-images')).toBe('4')
      expect(await page.locator('#stats-chart svg polyline').count()).toBe(1)
    },
    TIMEOUT_MS,
  )

  it.skipIf(!hasChromium)(
    'states a 402 as a plain sentence',
    async () => {
      await page.getByRole('radio', { name: 'A prompt' }).check()
      await page.getByRole('textbox', { name: 'Prompt' }).fill('a dancer mid-leap, studio light')
      await page.getByLabel('Variations').fill('8')
      await page.getByRole('button', { name: 'Generate' }).click()
      // 8 × 30 = 240 credits against a balance of 180
      const notice = page.getByRole('alert')
      await notice.filter({ hasText: 'You need 60 more credits' }).waitFor()
      expect(await notice.textContent()).toBe(
        'You need 60 more credits for this: it costs 240 and your balance is 180.',
      )
    },
    TIMEOUT_MS,
  )

  it.skipIf(!hasChromium)(
    'shows reconnecting after a network loss, then resumes with the missed events',
    async () => {
      const context = page.context()
      await context.setOffline(true)
      await page.locator('#connection', { hasText: 'reconnecting…' }).waitFor()
      // a generation started elsewhere (another tab, the API) while this page is offline
      const res = await client(inst).post(
        '/v1/generations',
        { mode: 'text', prompt: 'a quiet harbour at dawn', variations: 2 },
        await token(),
        { 'idempotency-key': crypto.randomUUID() },
      )
      expect(res.status).toBe(202)
      await context.setOffline(false)
      await page.locator('#connection[data-state="live"]').waitFor()
      await page
        .locator(`.gen[data-generation-id="${res.json.id}"][data-status="succeeded"]`)
        .waitFor()
      await galleryLoaded(6)
      const { balance } = (await client(inst).get('/v1/credits', await token())).json
      expect(balance).toBe(120)
      // the ledger follows live too: grant, first charge, this charge
      await page.locator('#ledger-rows tr').nth(2).waitFor()
      // and so does the stats panel
      await page.waitForFunction(() => {
        const s = document.getElementById('stats-summary')
        return s?.dataset.images === '6' && s.dataset.credits === '180'
      })
      await page.waitForFunction(
        (b) => document.getElementById('balance')?.textContent === String(b),
        balance,
      )
    },
    TIMEOUT_MS,
  )

  it.skipIf(!hasChromium)(
    'uploads a reference image, shows it, and the result has it behind the figure',
    async () => {
      const png = await sharp({
        create: { width: 512, height: 512, channels: 3, background: '#22aa44' },
      })
        .png()
        .toBuffer()
      await page.setInputFiles('#reference', {
        name: 'reference.png',
        mimeType: 'image/png',
        buffer: png,
      })
      // the preview is the server's thumbnail of what it stored
      await page.waitForFunction(() => {
        const img = document.querySelector<HTMLImageElement>('#reference-img')
        return !!img && img.complete && img.naturalWidth === 320
      })
      const uploadId = await page.locator('#reference-img').getAttribute('data-upload-id')
      expect(uploadId).toBeString()

      await page.getByRole('radio', { name: 'Poses' }).check()
      await page.locator('#poses').getByRole('checkbox').nth(2).check()
      await page.getByLabel('Variations').fill('1')
      const cards = await page.locator('.gen').count()
      await page.getByRole('button', { name: 'Generate' }).click()
      await page.waitForFunction((n) => document.querySelectorAll('.gen').length === n, cards + 1)
      const card = page.locator('.gen').first()
      const id = await card.getAttribute('data-generation-id')
      expect(id).toBeString()
      const generation = (await client(inst).get(`/v1/generations/${id}`, await token())).json
      expect(generation.totalItems).toBe(1)
      await page.locator(`.gen[data-generation-id="${id}"][data-status="succeeded"]`).waitFor()
      await card.locator('.gallery img').waitFor()
      // a corner pixel of the picture the page shows is backdrop: the upload's green
      const corner = await card.locator('.gallery img').evaluate(async (img: HTMLImageElement) => {
        if (!img.complete || img.naturalWidth === 0)
          await new Promise((resolve, reject) => {
            img.addEventListener('load', resolve, { once: true })
            img.addEventListener('error', reject, { once: true })
          })
        const canvas = document.createElement('canvas')
        canvas.width = img.naturalWidth
        canvas.height = img.naturalHeight
        const ctx = canvas.getContext('2d')!
        ctx.drawImage(img, 0, 0)
        return [...ctx.getImageData(1, 1, 1, 1).data.slice(0, 3)]
      })
      // the gallery shows the lossy WebP thumbnail: within a few levels of #22aa44
      const green = [0x22, 0xaa, 0x44]
      expect(corner.map((v, i) => Math.abs(v - green[i]!))).toSatisfy((d) => d.every((x) => x <= 8))
      await page.screenshot({ path: join(screenshots, 'browser-reference.png'), fullPage: true })
    },
    TIMEOUT_MS,
  )

  it.skipIf(!hasChromium)(
    'fits a 375 px phone screen without horizontal scrolling',
    async () => {
      await page.setViewportSize({ width: 375, height: 800 })
      const widths = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
      }))
      expect(widths.scroll).toBeLessThanOrEqual(widths.client)
      await page.evaluate(() => scrollTo(0, 0)) // the sticky header belongs at the top
      await page.screenshot({ path: join(screenshots, 'browser-phone.png'), fullPage: true })
    },
    TIMEOUT_MS,
  )
})

describe('API docs', () => {
  it.skipIf(!hasChromium)(
    'list the operations at /openapi with every other host unreachable, and no CSP violation',
    async () => {
      const docs = await browser!.newPage({ viewport: { width: 1280, height: 900 } })
      const elsewhere: string[] = []
      const violations: string[] = []
      // the network to other hosts is closed: the page must need nothing from them
      await docs.route(
        (url) => url.origin !== base,
        (route) => {
          elsewhere.push(route.request().url())
          return route.abort('blockedbyclient')
        },
      )
      docs.on('console', (m) => {
        if (/content security policy/i.test(m.text())) violations.push(m.text())
      })
      const res = await docs.goto(`${base}/openapi`)
      expect(res!.headers()['content-security-policy']).toContain("script-src 'self'")
      // the operations as Scalar lists them, from /openapi/json: the first group open,
      // the others opened by a click
      await docs
        .getByText('Ready: Postgres (and Redis) answer')
        .first()
        .waitFor({ timeout: 30_000 })
      await docs.getByRole('button', { name: 'Open Group - auth' }).click()
      await docs.getByText('Exchange email and password for a token').first().waitFor()
      await docs.screenshot({ path: join(screenshots, 'browser-docs.png') })
      await docs.close()
      expect(elsewhere).toEqual([])
      // the inline element carrying Scalar's configuration is data: refusing to run it is fine
      expect(violations.filter((v) => !/inline/i.test(v))).toEqual([])
    },
    TIMEOUT_MS,
  )
})
