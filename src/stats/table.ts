/**
 * The rollups of sql/0011_stats_rollups.sql: per user and UTC day, kept by
 * statement-level triggers on the source tables in the same transaction.
 * Read-only from TypeScript. Counts are bigint (strings from the driver);
 * `day` is a date, compared with 'YYYY-MM-DD' parameters and read with to_char.
 */
export interface StatsLedgerDayTable {
  user_id: string
  day: string
  kind: string
  entries: string
  amount: string
}

export interface StatsItemDayTable {
  user_id: string
  day: string
  status: string
  items: string
}

export interface StatsPoseDayTable {
  user_id: string
  day: string
  pose_id: string
  uses: string
}

export interface StatsGenerationDayTable {
  user_id: string
  day: string
  status: string
  generations: string
}
