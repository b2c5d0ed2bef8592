import { t } from 'elysia'
import { SafeString } from '../http/text'

/** The `Idempotency-Key` request header of every creating POST (API.md), checked at the edge. */
export const IdempotencyKeyHeader = t.Object({
  'idempotency-key': t.Optional(
    SafeString({
      pattern: '^[\\x20-\\x7E]{1,255}$',
      description: '1 to 255 printable ASCII characters; replays the first response for 24 h',
    }),
  ),
})
