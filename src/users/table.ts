import type { ColumnType, Selectable } from 'kysely'

export type Role = 'user' | 'admin'

export interface UserTable {
  id: string
  email: string
  password_hash: string
  role: Role
  created_at: ColumnType<Date, never, never>
}

export type UserRow = Selectable<UserTable>
