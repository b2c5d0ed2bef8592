import { describe, expect, it } from 'bun:test'
import { client } from '../support/http'
import { useTestEnv } from '../support/env'

const env = await useTestEnv()
const inst = await env.instance({ SIGNUP_CREDITS: '250' })
const api = client(inst)

describe('signup credits', () => {
  it('are granted once at registration, and logins never ask the user actor', async () => {
    const { user, token, password } = await api.register()
    expect((await api.get('/v1/credits', token)).json).toEqual({ balance: 250 })
    const before = inst.userActors.stats().commands
    for (let i = 0; i < 3; i++) {
      const login = await api.post('/v1/auth/login', { email: user.email, password })
      expect(login.status).toBe(200)
    }
    // a login is a password check and a token: no command went through any actor
    expect(inst.userActors.stats().commands).toBe(before)
    const ledger = await api.get('/v1/credits/ledger', token)
    expect(ledger.json.items.map((e: any) => [e.kind, e.amount, e.reason])).toEqual([
      ['grant', 250, 'signup credits'],
    ])
    expect((await api.get('/v1/credits', token)).json).toEqual({ balance: 250 })
    // four argon2id hashes: seconds on a loaded CI machine, above bun's 5 s default
  }, 20_000)
})
