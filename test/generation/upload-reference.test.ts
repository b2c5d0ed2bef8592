import { describe, expect, it, setDefaultTimeout } from 'bun:test'
import sharp from 'sharp'
import type { Instance } from '../../src/server'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'

// these tests wait for real renders
setDefaultTimeout(60_000)

const env = await useTestEnv()
const inst = await env.instance({
  ADMIN_EMAILS: 'admin@example.com',
  RENDER_SIZE: '256',
  RENDER_CONCURRENCY: '2',
  MAX_ACTIVE_GENERATIONS: '1000',
  MAX_IMAGES_PER_HOUR: '100000',
})
const api = client(inst)
const admin = await api.register('admin@example.com')
const [pose] = await env.sql`select id from poses order by name limit 1`
const poseId = pose!.id as string

async function funded(credits: number) {
  const u = await api.register()
  const res = await api.post(
    '/v1/admin/credits/grants',
    { userId: u.user.id, amount: credits, reason: 'test' },
    admin.token,
  )
  expect(res.status).toBe(201)
  return u
}

async function uploadSolid(token: string, colour: string) {
  const png = await sharp({
    create: { width: 512, height: 384, channels: 3, background: colour },
  })
    .png()
    .toBuffer()
  const form = new FormData()
  form.append('file', new File([png as BlobPart], 'reference.png', { type: 'image/png' }))
  const res = await inst.app.handle(
    new Request('http://localhost/v1/uploads', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    }),
  )
  expect(res.status).toBe(201)
  return (await res.json()).id as string
}

async function finishedImage(target: Instance, token: string, id: string) {
  let g: any
  await waitFor(
    async () => {
      g = (await client(target).get(`/v1/generations/${id}`, token)).json
      return g.finishedAt !== null
    },
    30_000,
    `generation ${id} to finish`,
  )
  expect(g.status).toBe('succeeded')
  const res = await target.app.handle(new Request(`http://localhost${g.items[0].imageUrl}`))
  expect(res.status).toBe(200)
  return sharp(await res.bytes())
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true })
}

async function ledgerOf(userId: string) {
  return env.sql`select kind, amount from ledger_entries where user_id = ${userId} order by seq`
}

describe('a generation’s uploadId', () => {
  it('must be one of the caller’s uploads: another user’s is 422 and nothing is charged', async () => {
    const owner = await funded(1000)
    const thief = await funded(1000)
    const uploadId = await uploadSolid(owner.token, '#22aa44')
    const before = await ledgerOf(thief.user.id)
    for (const id of [uploadId, crypto.randomUUID()]) {
      const res = await api.post(
        '/v1/generations',
        { mode: 'library', poseIds: [poseId], variations: 1, uploadId: id },
        thief.token,
      )
      expect(res.status).toBe(422)
      expect(res.json.error.code).toBe('validation_failed')
      expect(res.json.error.details).toEqual([{ path: '/uploadId', message: 'No such upload' }])
    }
    expect(await ledgerOf(thief.user.id)).toEqual(before)
    expect((await api.get('/v1/credits', thief.token)).json.balance).toBe(1000)
    const [row] =
      await env.sql`select count(*)::int as n from generations where user_id = ${thief.user.id}`
    expect(row!.n).toBe(0)
  })

  it('puts the upload behind the figure: the picture depends on it', async () => {
    const { token } = await funded(1000)
    const uploadId = await uploadSolid(token, '#22aa44')
    const body = { mode: 'library', poseIds: [poseId], variations: 1 }
    const plain = await api.post('/v1/generations', body, token)
    const withUpload = await api.post('/v1/generations', { ...body, uploadId }, token)
    expect(plain.status).toBe(202)
    expect(withUpload.status).toBe(202)
    expect(withUpload.json.creditsCharged).toBe(plain.json.creditsCharged)
    const a = await finishedImage(inst, token, plain.json.id)
    const b = await finishedImage(inst, token, withUpload.json.id)
    expect(b.info.width).toBe(256)
    expect(Buffer.compare(a.data, b.data)).not.toBe(0)
    // a corner is backdrop, not figure: the upload's colour with it, the renderer's own without
    const corner = (img: typeof a) => [...img.data.subarray(0, 3)]
    expect(corner(b)).toEqual([0x22, 0xaa, 0x44])
    expect(corner(a)).not.toEqual([0x22, 0xaa, 0x44])
  })

  it('keeps the reference under a background colour: the colour shows only where the upload is clear', async () => {
    const { token } = await funded(1000)
    const uploadId = await uploadSolid(token, '#3366cc')
    const res = await api.post(
      '/v1/generations',
      {
        mode: 'library',
        poseIds: [poseId],
        variations: 1,
        uploadId,
        background: { mode: 'color', value: '#ff0000' },
      },
      token,
    )
    expect(res.status).toBe(202)
    const img = await finishedImage(inst, token, res.json.id)
    expect([...img.data.subarray(0, 3)]).toEqual([0x33, 0x66, 0xcc])
  })
})
