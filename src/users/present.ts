import type { Role, UserRow } from './table'

export type PublicUser = { id: string; email: string | null; role: Role; createdAt: string }

/** A user as the API shows it: never the password hash. */
export function toPublicUser(row: UserRow): PublicUser {
  return { id: row.id, email: row.email, role: row.role, createdAt: row.created_at.toISOString() }
}
