import { t } from 'elysia'
import { SafeString } from '../http/text'

/** The `Idempotency-Key` request header of every creating POST (API.md), checked at the edge. */
export const IdempotencyKeyHeader = t.Object({
  'idempotency-key': t.Optional(
    SafeString({
      pattern: '^[\\x20-\\x7E]{1,255}$',
      description:
        '1 to 255 printable ASCII characters. For 24 h the same key replays the first answer that took effect (2xx) with `Idempotent-Replayed: true`, and another request under it is 409 idempotency_conflict. An answer that changed nothing (a 4xx such as 402, 422 or 429, or a 503) is not kept: a retry under the key is decided again, so after a top-up a 402 may become 202, never a second effect.',
    }),
  ),
})
