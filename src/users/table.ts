import type { ColumnType, Selectable } from 'kysely'

export type Role = 'user' | 'admin'

export interface UserTable {
  id: string
  /** Null only for a user provisioned from an identity without a free email claim. */
  email: string | null
  /** Null for users provisioned from an external identity: no password login. */
  password_hash: string | null
  role: Role
  created_at: ColumnType<Date, never, never>
}

export type UserRow = Selectable<UserTable>

/** (issuer, subject) of an identity provider → the local user it names (JWKS_URL mode). */
export interface UserIdentityTable {
  issuer: string
  subject: string
  user_id: string
  email: string | null
  created_at: ColumnType<Date, never, never>
}
