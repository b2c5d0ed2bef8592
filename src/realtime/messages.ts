import { Type as T, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { Event } from '../events/event'
import { EVENT_ID_PATTERN } from '../events/ids'
import { SafeString } from '../http/text'

/**
 * The WebSocket protocol of API.md, as schemas: what a client may send, and
 * the frames the server sends. Anything a client sends that is not exactly
 * one of these closes the connection.
 */

// an id longer than any issued one is out of range (resync), not malformed, up to this length
const EVENT_ID_MAX = 256
const EventId = SafeString({ pattern: EVENT_ID_PATTERN, maxLength: EVENT_ID_MAX })
/**
 * The auth message's resumeAfter is checked against EVENT_ID_PATTERN (ASCII,
 * so no NUL either) after the token, in admission.ts: a good token with a
 * malformed id closes with 1008, not 4401.
 */
const ResumeAfter = T.String({ maxLength: EVENT_ID_MAX })

export const ClientMessage = T.Union([
  T.Object(
    {
      type: T.Literal('auth'),
      token: SafeString({ minLength: 1, maxLength: 4096 }),
      resumeAfter: T.Optional(ResumeAfter),
    },
    { additionalProperties: false },
  ),
  T.Object({ type: T.Literal('ping') }, { additionalProperties: false }),
  T.Object({ type: T.Literal('resume'), after: EventId }, { additionalProperties: false }),
])

export type ClientMessage = Static<typeof ClientMessage>

const check = TypeCompiler.Compile(ClientMessage)

/**
 * Elysia hands over text frames already JSON-parsed when they look like JSON;
 * anything else (binary, plain text, a bare number) is not a message.
 */
export function parseClientMessage(raw: unknown): ClientMessage | undefined {
  let value = raw
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw)
    } catch {
      return undefined
    }
  }
  return check.Check(value) ? value : undefined
}

/** Close codes of API.md, with the reason text each carries (≤ 123 bytes). */
export const Close = {
  draining: { code: 1012, reason: 'server draining: reconnect and resume' },
  invalidMessage: { code: 1008, reason: 'invalid message' },
  rateLimited: { code: 1008, reason: 'too many messages' },
  tooManySockets: { code: 1008, reason: 'too many sockets for this user' },
  tooBig: { code: 1009, reason: 'message too big' },
  internal: { code: 1011, reason: 'internal error: reconnect and resume' },
  slowConsumer: { code: 1013, reason: 'too slow: reconnect and resume' },
  unauthorized: { code: 4401, reason: 'unauthorized' },
  tokenExpired: { code: 4401, reason: 'token expired' },
  authTimeout: { code: 4408, reason: 'no auth message in time' },
} as const

export type CloseReason = (typeof Close)[keyof typeof Close]

export const frames = {
  ready: (userId: string, instance: string) => JSON.stringify({ type: 'ready', userId, instance }),
  pong: JSON.stringify({ type: 'pong' }),
  resync: JSON.stringify({ type: 'resync' }),
  reconnect: JSON.stringify({ type: 'reconnect' }),
  event: (e: Event) =>
    e.json === undefined
      ? JSON.stringify({ type: 'event', id: e.id, name: e.name, data: e.data })
      : // an id is digits and a dash, a name one of EVENT_NAMES: neither needs escaping
        `{"type":"event","id":"${e.id}","name":"${e.name}","data":${e.json}}`,
}
