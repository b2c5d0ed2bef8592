import { describe, expect, it } from 'bun:test'
import { taggedWire, toWireJson, WireError } from '../../src/actors/wire'
import {
  AppError,
  IdempotencyConflict,
  InsufficientCredits,
  NotFound,
  RateLimited,
  StaleEpoch,
  Unavailable,
} from '../../src/errors'
import type { GenerationMessage, GenerationResult } from '../../src/generation/commands'
import { generationWire } from '../../src/generation/wire'
import type { LedgerMessage } from '../../src/ledger/credits'
import type { LedgerResult } from '../../src/ledger/commands'
import { ledgerWire } from '../../src/ledger/wire'

/**
 * The user actor's wire codec (src/actors/wire.ts): every command kind and
 * outcome crosses to another instance and comes back equal; what JSON would
 * change silently is refused when it is encoded, and what does not fit the
 * schema is refused when it is decoded.
 */
type Message = LedgerMessage | GenerationMessage
type Result = LedgerResult | GenerationResult
const wire = taggedWire<Message, Result>({ ledger: ledgerWire, generation: generationWire })

const commands: Message[] = [
  { type: 'ledger', command: { kind: 'grant', amount: 100, reason: 'signup', key: 'signup' } },
  {
    type: 'ledger',
    command: {
      kind: 'purchase',
      amount: 5,
      reason: 'payment evt_1',
      key: 'payment:evt_1',
      externalId: 'evt_1',
    },
  },
  {
    type: 'ledger',
    command: {
      kind: 'refund',
      amount: 30,
      reason: 'refund for item x',
      key: 'refund:item:x',
      generationId: '0190a0b0-0000-7000-8000-000000000001',
      refundOf: '0190a0b0-0000-7000-8000-000000000002',
    },
  },
  {
    type: 'generation',
    command: {
      kind: 'create',
      generationId: '0190a0b0-0000-7000-8000-000000000003',
      request: {
        mode: 'library',
        poseIds: ['p1'],
        variations: 2,
        background: { mode: 'color', value: '#ffeedd' },
        formats: ['square'],
      },
      items: [
        { id: 'i1', key: 'p1-v0', poseId: 'p1', variation: 0 },
        { id: 'i2', key: 'p1-v1', poseId: 'p1', variation: 1 },
      ],
      pricePerItem: 40,
      deadlineSeconds: null,
      commandKey: 'idem-1',
    },
  },
  { type: 'generation', command: { kind: 'cancel', generationId: 'g1', reason: 'deadline' } },
  {
    type: 'generation',
    command: { kind: 'claimed', generationId: 'g1', items: [{ id: 'i1', key: 'p1-v0' }] },
  },
  {
    type: 'generation',
    command: {
      kind: 'outcome',
      itemId: 'i1',
      owner: null,
      result: { status: 'failed', code: 'render_failed', message: 'boom' },
    },
  },
  {
    type: 'generation',
    command: {
      kind: 'outcome',
      itemId: 'i2',
      owner: 'inst-a',
      result: {
        status: 'succeeded',
        imageMediaId: 'm1',
        thumbnailMediaId: 'm2',
        exports: { square: 'm3' },
      },
    },
  },
]

describe('actor wire codec', () => {
  it('round-trips every ledger and generation command kind', () => {
    for (const c of commands) expect(wire.decodeCommand(wire.encodeCommand(c))).toEqual(c)
  })

  it('round-trips results and keeps the code, status, details and headers of errors', () => {
    const ledgerCmd = commands[0]!
    const entry = {
      id: 'e1',
      amount: -30,
      balanceAfter: 70,
      kind: 'charge' as const,
      reason: 'r',
      generationId: null,
      createdAt: '2026-12-02T01:00:00.000Z',
    }
    const ok = { ok: true as const, value: { entry, balance: 70, replayed: false } }
    expect(wire.decodeOutcome(ledgerCmd, wire.encodeOutcome(ledgerCmd, ok))).toEqual(ok)
    const genCmd = commands[4]!
    const genOk = { ok: true as const, value: { generationId: 'g1', applied: true } }
    expect(wire.decodeOutcome(genCmd, wire.encodeOutcome(genCmd, genOk))).toEqual(genOk)

    for (const error of [
      new InsufficientCredits(30, 10),
      new RateLimited(7, 'At most 500 images per hour'),
      new NotFound('Generation'),
      new IdempotencyConflict(),
      new Unavailable('The database is unavailable; retry shortly', 2),
      new StaleEpoch(),
    ]) {
      const back = wire.decodeOutcome(genCmd, wire.encodeOutcome(genCmd, { ok: false, error })) as {
        ok: false
        error: AppError
      }
      expect(back.ok).toBe(false)
      expect(back.error).toBeInstanceOf(AppError)
      expect({
        code: back.error.code,
        status: back.error.status,
        message: back.error.message,
        details: back.error.details,
        headers: back.error.headers,
      }).toEqual({
        code: error.code,
        status: error.status,
        message: error.message,
        details: error.details,
        headers: error.headers,
      })
    }
    // a bug on the owner stays a 500 on the caller, with nothing of its message or stack
    const internal = wire.decodeOutcome(
      genCmd,
      wire.encodeOutcome(genCmd, { ok: false, error: new TypeError('x is undefined at db.ts:12') }),
    ) as { ok: false; error: Error }
    expect(internal.error).not.toBeInstanceOf(AppError)
    expect(internal.error.message).not.toContain('db.ts')
  })

  it('answers a database failure on the owner as its own edge would: 503 with Retry-After', () => {
    // seen in the frozen-instance fault test: an instance running a dead one's inbox entry
    // waited on a row lock past lock_timeout, and its sender answered 500
    const lockTimeout = Object.assign(new Error('canceling statement due to lock timeout'), {
      code: '55P03',
    })
    const lost = new Error('Connection terminated unexpectedly')
    const genCmd = commands[4]!
    for (const error of [lockTimeout, lost]) {
      const back = wire.decodeOutcome(genCmd, wire.encodeOutcome(genCmd, { ok: false, error })) as {
        ok: false
        error: AppError
      }
      expect(back.error).toBeInstanceOf(AppError)
      expect({ code: back.error.code, status: back.error.status }).toEqual({
        code: 'unavailable',
        status: 503,
      })
      expect(back.error.headers?.['retry-after']).toBeTruthy()
      expect(back.error.message).not.toContain('lock')
    }
  })

  it('refuses at encode time what JSON would change silently', () => {
    for (const bad of [
      { at: new Date() },
      { n: Number.NaN },
      { n: Number.POSITIVE_INFINITY },
      { list: [1, undefined, 2] },
      { big: 1n },
      { map: new Map() },
      { f: () => 1 },
    ])
      expect(() => toWireJson(bad)).toThrow(WireError)
    // an absent optional field is fine: JSON leaves it out and the decoded value lacks it too
    expect(toWireJson({ a: 1, b: undefined })).toBe('{"a":1}')
    const dated = {
      type: 'ledger',
      command: { kind: 'grant', amount: 1, reason: 'r', key: 'k', generationId: new Date() },
    } as unknown as Message
    expect(() => wire.encodeCommand(dated)).toThrow(WireError)
  })

  it('refuses at decode time an entry that does not fit the schema', () => {
    for (const text of [
      'not json',
      '{"type":"nope","command":{}}',
      '{"type":"__proto__","command":{}}',
      '{"type":"ledger","command":{"kind":"grant","amount":"100","reason":"r","key":"k"}}',
      '{"type":"ledger","command":{"kind":"grant","amount":1.5,"reason":"r","key":"k"}}',
      '{"type":"ledger","command":{"kind":"steal","amount":1,"reason":"r","key":"k"}}',
      '{"type":"ledger","command":{"kind":"grant","amount":1,"reason":"r"}}',
      '{"type":"ledger","command":{"kind":"grant","amount":1,"reason":"r","key":"k","extra":1}}',
      '{"type":"generation","command":{"kind":"outcome","itemId":"i","owner":null,"result":{"status":"lost"}}}',
    ])
      expect(() => wire.decodeCommand(text)).toThrow(WireError)
    const genCmd = commands[4]!
    expect(() => wire.decodeOutcome(genCmd, '{"ok":true,"value":{"generationId":1}}')).toThrow(
      WireError,
    )
  })
})
