import { sql, type RawBuilder } from 'kysely'

/**
 * A value for a jsonb column. Bound as text and cast in SQL: postgres.js
 * JSON-encodes any parameter the server types as jsonb, so a JSON string bound
 * directly would be stored as a JSON string scalar. Same result on PGlite.
 */
export function jsonb<T>(value: T): RawBuilder<T> {
  return sql<T>`${JSON.stringify(value ?? null)}::text::jsonb`
}
