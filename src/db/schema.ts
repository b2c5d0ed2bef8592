import type { UserTable } from '../users/table'

/** Every table kysely knows, by SQL name. Each room owns its table types. */
export interface DB {
  users: UserTable
}
