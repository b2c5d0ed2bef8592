import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { toDbAppError } from '../db/errors'
import { AppError, Unavailable, type ErrorDetails } from '../errors'
import type { Outcome } from './actor-system'

/**
 * How actor commands and their outcomes cross between instances (Redis
 * stream entries, src/actors/forwarding.ts). A codec turns a value into plain
 * JSON and back, and refuses at encode time anything JSON would change
 * silently (a Date, NaN, undefined in an array, a bigint, a class instance),
 * so a command that round-trips is the command that was sent. Decoding
 * checks the shape against the room's schema: an entry that does not fit
 * is refused, never half-applied.
 */
export type WireCodec<C, R> = {
  encodeCommand(command: C): string
  decodeCommand(text: string): C
  encodeOutcome(command: C, outcome: Outcome<R>): string
  decodeOutcome(command: C, text: string): Outcome<R>
}

export class WireError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'WireError'
  }
}

/** JSON text of `value`, or a WireError naming the first path JSON cannot carry as it is. */
export function toWireJson(value: unknown): string {
  check(value, '')
  return JSON.stringify(value)
}

function check(value: unknown, path: string): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) throw new WireError(`${path || '/'}: ${value} is not JSON`)
      return
    case 'undefined':
      throw new WireError(`${path || '/'}: undefined is not JSON`)
    case 'object': {
      if (value === null) return
      if (Array.isArray(value)) return value.forEach((v, i) => check(v, `${path}/${i}`))
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null)
        throw new WireError(`${path || '/'}: a ${proto?.constructor?.name ?? 'class'} is not JSON`)
      for (const [k, v] of Object.entries(value)) if (v !== undefined) check(v, `${path}/${k}`)
      return
    }
    default:
      throw new WireError(`${path || '/'}: a ${typeof value} is not JSON`)
  }
}

/** An error as it travels: AppErrors keep their code, status, message, details and headers. */
export type WireErrorValue = {
  code: string
  status: number
  message: string
  details?: ErrorDetails
  headers?: Record<string, string>
}

/**
 * The error as the owner's own edge would have answered it (src/http/errors.ts):
 * an AppError as it is, a database failure by the one table (a lock timeout or
 * a lost connection is a 503 with Retry-After); anything else is our bug there,
 * and the caller renders a 500 without its message.
 */
export function encodeError(error: Error): WireErrorValue {
  const app = toDbAppError(error)
  if (app)
    return {
      code: app.code,
      status: app.status,
      message: app.message,
      details: app.details,
      headers: app.headers,
    }
  return { code: 'internal', status: 500, message: 'The owner instance failed this command' }
}

export function decodeError(v: WireErrorValue): Error {
  if (v.status === 500 && v.code === 'internal') return new Error(v.message)
  return new AppError(v.code, v.status, v.message, v.details, { headers: v.headers })
}

/** The error a receiver's `failed` reply stands for (envelope.ts); one this version cannot read is a 503. */
export function decodeFailure(v: unknown): Error {
  if (isWireErrorValue(v)) return decodeError(v)
  return new Unavailable('The answer of the owner could not be read; retry shortly', 2)
}

function isWireErrorValue(v: unknown): v is WireErrorValue {
  const e = v as WireErrorValue
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.code === 'string' &&
    typeof e.status === 'number' &&
    typeof e.message === 'string'
  )
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new WireError('not JSON')
  }
}

/** A room's commands and results, checked by their TypeBox schemas. */
export type RoomWire = { command: TSchema; result: TSchema }

/**
 * The codec of a runtime whose commands are tagged `{ type, command }`
 * (src/actors/dispatch.ts): each tag's command and result have the schema
 * of the room that owns them.
 */
export function taggedWire<C extends { type: string }, R>(
  rooms: Record<C['type'], RoomWire>,
): WireCodec<C, R> {
  function room(type: unknown): RoomWire {
    const r = typeof type === 'string' ? (rooms as Record<string, RoomWire>)[type] : undefined
    if (!r || !Object.hasOwn(rooms, type as string))
      throw new WireError(`unknown command type ${String(type)}`)
    return r
  }
  return {
    encodeCommand(command) {
      const { type, command: body } = command as unknown as { type: string; command: unknown }
      if (!Value.Check(room(type).command, body))
        throw new WireError(`a ${type} command that does not fit its schema`)
      return toWireJson({ type, command: body })
    },
    decodeCommand(text) {
      const v = parse(text) as { type?: unknown; command?: unknown }
      if (typeof v !== 'object' || v === null) throw new WireError('not a command')
      if (!Value.Check(room(v.type).command, v.command))
        throw new WireError(`a ${String(v.type)} command that does not fit its schema`)
      return { type: v.type, command: v.command } as unknown as C
    },
    encodeOutcome(_command, outcome) {
      return outcome.ok
        ? toWireJson({ ok: true, value: outcome.value })
        : toWireJson({ ok: false, error: encodeError(outcome.error) })
    },
    decodeOutcome(command, text) {
      const v = parse(text) as { ok?: unknown; value?: unknown; error?: unknown }
      if (v?.ok === false && isWireErrorValue(v.error))
        return { ok: false, error: decodeError(v.error) }
      const { type } = command as unknown as { type: string }
      if (v?.ok === true && Value.Check(room(type).result, v.value))
        return { ok: true, value: v.value as R }
      throw new WireError(`an outcome of a ${type} command that does not fit its schema`)
    },
  }
}
