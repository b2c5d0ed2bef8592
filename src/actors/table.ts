import type { ColumnType, Selectable } from 'kysely'

/** sql/0020_actor_owners.sql: who owns a user's actor, with its fencing epoch. */
export interface ActorOwnerTable {
  user_id: string
  epoch: ColumnType<number, number, number>
  owner: string | null
  since: ColumnType<Date, never, never>
  lease_until: ColumnType<Date, never, never>
}

export type ActorOwnerRow = Selectable<ActorOwnerTable>
