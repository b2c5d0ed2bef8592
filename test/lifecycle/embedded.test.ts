import { afterAll, describe, expect, it } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { loadConfig } from '../../src/config/config'
import { buildInstance, type Instance } from '../../src/server'
import { client } from '../support/http'
import { silentLog } from '../support/env'
import { within } from '../support/server-process'

// PGlite boots in seconds; `bun test` alone gives a test 5 s
const SLOW_MS = 30_000
/** A fresh process boots PGlite and migrates an empty DATA_DIR: ~5 s alone, far more when the CPU is shared. */
const BOOT_MS = 60_000

/** Embedded mode: no DATABASE_URL, no REDIS_URL, PGlite in DATA_DIR, nothing to install. */
const dataDir = mkdtempSync(join(tmpdir(), 'atelier-embedded-'))
const config = loadConfig({ DATA_DIR: dataDir })
const open: Instance[] = []

async function start() {
  const inst = await buildInstance(config, silentLog)
  open.push(inst)
  return inst
}

afterAll(async () => {
  for (const inst of open.splice(0)) await inst.close().catch(() => {})
  rmSync(dataDir, { recursive: true, force: true })
})

describe('embedded mode', () => {
  it('reads an empty environment as embedded, with the development secret', () => {
    expect(config.mode).toBe('embedded')
    expect(config.DATABASE_URL).toBeUndefined()
    expect(config.REDIS_URL).toBeUndefined()
    expect(config.usingDevSecret).toBe(true)
  })

  it(
    'serves register, login and me on PGlite and is ready without Redis',
    async () => {
      const inst = await start()
      expect(inst.database.kind).toBe('pglite')
      expect(inst.redis).toBeUndefined()
      const api = client(inst)

      const ready = await api.get('/health/ready')
      expect(ready.status).toBe(200)
      const health = await api.get('/health')
      expect(Object.keys(health.json.checks)).toEqual(['postgres'])
      expect(health.json.checks.postgres.ok).toBe(true)

      const reg = await api.post('/v1/auth/register', {
        email: 'Embedded@Example.com',
        password: 'a long password',
      })
      expect(reg.status).toBe(201)
      const login = await api.post('/v1/auth/login', {
        email: 'embedded@example.com',
        password: 'a long password',
      })
      expect(login.status).toBe(200)
      const me = await api.get('/v1/me', login.json.token)
      expect(me.status).toBe(200)
      expect(me.json).toMatchObject({ id: reg.json.user.id, email: 'embedded@example.com' })
      // a newcomer can try a generation at once: SIGNUP_CREDITS is 1000 in embedded mode
      expect(me.json.balance).toBe(1000)
      const [pose] = (await api.get('/v1/library/poses?limit=1', login.json.token)).json.items
      const generation = await api.post(
        '/v1/generations',
        { mode: 'library', poseIds: [pose.id], variations: 1 },
        login.json.token,
      )
      expect(generation.status).toBe(202)
      // uploads run the same SQL on PGlite (advisory lock, millisecond timestamps)
      const form = new FormData()
      const png = await sharp({
        create: { width: 300, height: 300, channels: 3, background: '#123456' },
      })
        .png()
        .toBuffer()
      form.append('file', new File([png as BlobPart], 'ref.png'))
      const uploaded = await inst.app.handle(
        new Request('http://localhost/v1/uploads', {
          method: 'POST',
          headers: { authorization: `Bearer ${login.json.token}` },
          body: form,
        }),
      )
      expect(uploaded.status).toBe(201)
      const listed = await api.get('/v1/uploads', login.json.token)
      expect(listed.json.items.map((u: { id: string }) => u.id)).toEqual([
        (await uploaded.json()).id,
      ])
      expect(
        (
          await api.post('/v1/auth/login', {
            email: 'embedded@example.com',
            password: 'wrong password',
          })
        ).status,
      ).toBe(401)
    },
    SLOW_MS,
  )

  it(
    'bun start prints the URL and says a new account gets the signup credits',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'atelier-embedded-start-'))
      const proc = Bun.spawn([process.execPath, 'src/server.ts'], {
        cwd: join(import.meta.dir, '..', '..'),
        env: { PATH: process.env.PATH ?? '', PORT: '0', DATA_DIR: dir, LOG_LEVEL: 'info' },
        stdout: 'pipe',
        stderr: 'inherit',
      })
      try {
        const line = await within(greeting(proc.stdout), BOOT_MS, 'the embedded greeting on stdout')
        expect(line.msg).toMatch(
          /^open http:\/\/localhost:\d+ to try Atelier: every new account starts with 1000 credits/,
        )
        expect(line.signupCredits).toBe(1000)
      } finally {
        proc.kill('SIGKILL')
        await proc.exited
        rmSync(dir, { recursive: true, force: true })
      }
    },
    BOOT_MS + 5000,
  )

  it(
    'keeps its data in DATA_DIR across a restart',
    async () => {
      for (const inst of open.splice(0)) await inst.close()
      const again = await start()
      const login = await client(again).post('/v1/auth/login', {
        email: 'embedded@example.com',
        password: 'a long password',
      })
      expect(login.status).toBe(200)
    },
    SLOW_MS,
  )
})

/** The first JSON log line whose message starts with "open "; rejects if the stream ends first. */
async function greeting(stream: ReadableStream<Uint8Array>) {
  let text = ''
  const reader = stream.getReader()
  const decoder = new TextDecoder()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    text += decoder.decode(value, { stream: true })
    for (const raw of text.split('\n')) {
      const line = (() => {
        try {
          return JSON.parse(raw) as { msg: string; [k: string]: unknown }
        } catch {
          return undefined
        }
      })()
      if (line?.msg?.startsWith('open ')) return line
    }
  }
  throw new Error(`the process ended without the greeting; it wrote:\n${text}`)
}
